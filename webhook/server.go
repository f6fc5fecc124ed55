package webhook

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Server is the webhook's HTTPS server.
type Server struct {
	Addr    string
	Handler *Handler
	// GetCertificate serves the current certificate; it is asked on every handshake, so a
	// rotated certificate is used without a restart.
	GetCertificate func(*tls.ClientHelloInfo) (*tls.Certificate, error)
	// Registry gathers /metrics.
	Registry *prometheus.Registry
	Log      *slog.Logger
	// ShutdownGrace bounds how long in-flight requests may finish after ctx ends.
	ShutdownGrace time.Duration
}

// Router returns the routes; exposed for tests that serve it without TLS.
func (s *Server) Router() http.Handler {
	r := mux.NewRouter()
	r.Handle("/mutate", s.Handler).Methods(http.MethodPost)
	r.HandleFunc("/mutate", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "method "+r.Method+" not allowed: POST an AdmissionReview", http.StatusMethodNotAllowed)
	})
	r.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) }).Methods(http.MethodGet)
	r.HandleFunc("/readyz", s.readyz).Methods(http.MethodGet)
	if s.Registry != nil {
		r.Handle("/metrics", promhttp.HandlerFor(s.Registry, promhttp.HandlerOpts{})).Methods(http.MethodGet)
	}
	return recoverPanics(s.Log, r)
}

// readyz is ready once a serving certificate is available.
func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	if s.GetCertificate != nil {
		if c, err := s.GetCertificate(&tls.ClientHelloInfo{}); err != nil || c == nil {
			http.Error(w, "no serving certificate yet", http.StatusServiceUnavailable)
			return
		}
	}
	_, _ = w.Write([]byte("ok\n"))
}

// ListenAndServe serves until ctx ends, then drains in-flight requests.
func (s *Server) ListenAndServe(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", s.Addr, err)
	}
	return s.Serve(ctx, ln)
}

// Serve is ListenAndServe on an existing listener.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.Router(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      15 * time.Second,
		IdleTimeout:       90 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.Log.Handler(), slog.LevelWarn),
		TLSConfig: &tls.Config{
			MinVersion:     tls.VersionTLS12,
			GetCertificate: s.GetCertificate,
		},
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.ServeTLS(ln, "", "") }()
	s.Log.Info("serving", "address", ln.Addr().String())
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	grace := s.ShutdownGrace
	if grace == 0 {
		grace = 10 * time.Second
	}
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	s.Log.Info("shutting down", "grace", grace.String())
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// recoverPanics answers 500 instead of dropping the connection, and logs the stack.
func recoverPanics(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				log.Error("panic while handling request", "path", r.URL.Path, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
				http.Error(w, "internal error", http.StatusInternalServerError)
			}
		}()
		next.ServeHTTP(w, r)
	})
}
