package agent

import (
	"errors"
	"net/http"
	"testing"

	"github.com/hashicorp/vault/api"
)

// One table sorts Vault's answers for both decisions: retrying a fetch or renewal (classify)
// and giving up on renewing a token (vaultRefused).
func TestVaultAnswers(t *testing.T) {
	for _, tc := range []struct {
		name               string
		err                error
		permanent, refusal bool
		forbidden          bool
	}{
		{"no answer", errors.New("dial tcp 127.0.0.1:8200: connection refused"), false, false, false},
		{"403", &api.ResponseError{StatusCode: http.StatusForbidden}, true, true, true},
		{"400 lease not found", &api.ResponseError{StatusCode: http.StatusBadRequest}, true, true, false},
		{"404", &api.ResponseError{StatusCode: http.StatusNotFound}, true, true, false},
		{"429", &api.ResponseError{StatusCode: http.StatusTooManyRequests}, false, false, false},
		{"500 past max TTL", &api.ResponseError{StatusCode: http.StatusInternalServerError}, false, true, false},
		{"502", &api.ResponseError{StatusCode: http.StatusBadGateway}, false, false, false},
		{"503 sealed", &api.ResponseError{StatusCode: http.StatusServiceUnavailable}, false, false, false},
		{"504", &api.ResponseError{StatusCode: http.StatusGatewayTimeout}, false, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := classify(tc.err)
			if got := isPermanent(c); got != tc.permanent {
				t.Errorf("permanent %v, want %v", got, tc.permanent)
			}
			if got := errors.Is(c, errForbidden); got != tc.forbidden {
				t.Errorf("forbidden %v, want %v", got, tc.forbidden)
			}
			if !errors.Is(c, tc.err) {
				t.Errorf("classify lost the error: %v", c)
			}
			if got := vaultRefused(tc.err); got != tc.refusal {
				t.Errorf("vaultRefused %v, want %v", got, tc.refusal)
			}
		})
	}
	if classify(nil) != nil {
		t.Error("classify(nil) is not nil")
	}
}
