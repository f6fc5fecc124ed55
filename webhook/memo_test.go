package webhook_test

import (
	"reflect"
	"sync"
	"testing"

	"github.com/vault-injector/vault-injector/patch"
	"github.com/vault-injector/vault-injector/webhook/webhooktest"
)

// Requests are memoised by annotations: pods that share them but differ elsewhere must still get
// the patch a fresh mutator gives them, also when admitted concurrently.
func TestMemoisedRequestsGiveTheSamePatches(t *testing.T) {
	const ann = `"annotations":{"vault-injector.io/role":"app","vault-injector.io/secret-db":"database/creds/app","vault-injector.io/template-cfg":"{{ env \"X\" }}"}`
	pods := []string{
		`{"metadata":{"name":"a",` + ann + `},"spec":{"containers":[{"name":"app"}]}}`,
		`{"metadata":{"name":"b",` + ann + `},"spec":{"containers":[{"name":"app","env":[{"name":"X","value":"1"}]},{"name":"web"}],"volumes":[{"name":"data"}]}}`,
		`{"metadata":{"name":"c",` + ann + `},"spec":{"initContainers":[{"name":"setup"}],"containers":[{"name":"app"}]}}`,
	}
	want := make([][]byte, len(pods))
	for i, p := range pods {
		res := webhooktest.Mutator().Mutate([]byte(p), "shop") // fresh: nothing memoised
		b, err := patch.Marshal(res.Patch)
		if err != nil || res.Err != nil {
			t.Fatal(err, res.Err)
		}
		want[i] = b
	}
	shared := webhooktest.Mutator()
	var wg sync.WaitGroup
	for round := 0; round < 20; round++ {
		for i, p := range pods {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res := shared.Mutate([]byte(p), "shop")
				got, err := patch.Marshal(res.Patch)
				if err != nil || !reflect.DeepEqual(got, want[i]) {
					t.Errorf("pod %d: memoised patch differs from a fresh one (err %v)\n got %s\nwant %s", i, err, got, want[i])
				}
			}()
		}
	}
	wg.Wait()
}
