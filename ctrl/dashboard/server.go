package dashboard

import (
	"bytes"
	"context"
	"crypto/rand"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/time/rate"

	"github.com/lumbrjx/vpblu/ctrl/meshview"
)

//go:embed assets
var assets embed.FS

// CookieName is the session cookie.
const CookieName = "vpblu_session"

// Defaults of Options.
const (
	DefaultSessionTTL = 12 * time.Hour
	// DefaultLoginEvery and DefaultLoginBurst: per client address, five
	// attempts at once, then one every 2 s.
	DefaultLoginEvery = 2 * time.Second
	DefaultLoginBurst = 5
	// DefaultRefresh is how often the page asks for a new view; views
	// are shared between viewers for as long.
	DefaultRefresh = 2 * time.Second
)

// Options configure a Server.
type Options struct {
	// PasswordHash is the bcrypt hash of the password; an htpasswd line
	// ("user:$2y$...") is accepted too.
	PasswordHash []byte
	// Load reads the mesh (the controller passes its informer cache).
	Load func(ctx context.Context) (*meshview.Mesh, error)
	// Reports gives daemons' last reports; may be nil.
	Reports    Reports
	SessionTTL time.Duration
	LoginEvery time.Duration
	LoginBurst int
	Refresh    time.Duration
	// Now is the clock (tests).
	Now func() time.Time
	Log *slog.Logger
}

// Server serves the dashboard. It is an http.Handler.
type Server struct {
	opts  Options
	hash  []byte
	mux   *http.ServeMux
	pages *template.Template

	mu       sync.Mutex
	sessions map[string]time.Time // token -> expiry
	limiters map[string]*rate.Limiter
	total    *rate.Limiter

	viewMu   sync.Mutex
	view     []byte
	viewTime time.Time
}

// New returns a Server; a hash bcrypt does not accept is an error.
func New(opts Options) (*Server, error) {
	hash := bytes.TrimSpace(opts.PasswordHash)
	if _, h, ok := bytes.Cut(hash, []byte(":")); ok {
		hash = h
	}
	if _, err := bcrypt.Cost(hash); err != nil {
		return nil, fmt.Errorf("dashboard password hash: %w", err)
	}
	if opts.Load == nil {
		return nil, errors.New("dashboard: no Load")
	}
	if opts.SessionTTL <= 0 {
		opts.SessionTTL = DefaultSessionTTL
	}
	if opts.LoginEvery <= 0 {
		opts.LoginEvery = DefaultLoginEvery
	}
	if opts.LoginBurst <= 0 {
		opts.LoginBurst = DefaultLoginBurst
	}
	if opts.Refresh <= 0 {
		opts.Refresh = DefaultRefresh
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	pages, err := template.ParseFS(assets, "assets/*.html")
	if err != nil {
		return nil, fmt.Errorf("dashboard pages: %w", err)
	}
	s := &Server{
		opts: opts, hash: hash, pages: pages,
		sessions: map[string]time.Time{}, limiters: map[string]*rate.Limiter{},
		// Across all addresses, ten times one address's rate: a spread-out
		// guessing attempt is slowed too.
		total: rate.NewLimiter(rate.Every(opts.LoginEvery/10), 10*opts.LoginBurst),
	}
	s.mux = http.NewServeMux()
	s.mux.HandleFunc("GET /login", s.loginPage)
	s.mux.HandleFunc("POST /login", s.login)
	s.mux.HandleFunc("POST /logout", s.logout)
	s.mux.HandleFunc("GET /api/mesh", s.authenticated(s.mesh, false))
	s.mux.HandleFunc("GET /app.js", s.authenticated(s.static("assets/app.js", "text/javascript; charset=utf-8"), false))
	s.mux.HandleFunc("GET /style.css", s.static("assets/style.css", "text/css; charset=utf-8"))
	s.mux.HandleFunc("GET /{$}", s.authenticated(s.index, true))
	return s, nil
}

// ServeHTTP sets headers that keep the pages out of frames, caches and
// foreign scripts, then routes.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	s.mux.ServeHTTP(w, r)
}

// authenticated runs next for a live session; otherwise it sends pages
// to the login form and API calls a 401.
func (s *Server) authenticated(next http.HandlerFunc, page bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.session(r) {
			next(w, r)
			return
		}
		if page {
			http.Redirect(w, r, "/login", http.StatusSeeOther)
			return
		}
		http.Error(w, "login required", http.StatusUnauthorized)
	}
}

func (s *Server) session(r *http.Request) bool {
	c, err := r.Cookie(CookieName)
	if err != nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	exp, ok := s.sessions[c.Value]
	if ok && s.opts.Now().After(exp) {
		delete(s.sessions, c.Value)
		return false
	}
	return ok
}

func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	s.render(w, http.StatusOK, "login.html", "")
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	if !s.allow(clientAddr(r)) {
		w.Header().Set("Retry-After", fmt.Sprint(int(s.opts.LoginEvery.Seconds()+0.999)))
		s.render(w, http.StatusTooManyRequests, "login.html", "Too many attempts: wait a moment.")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
	if err := r.ParseForm(); err != nil {
		s.render(w, http.StatusBadRequest, "login.html", "Malformed form.")
		return
	}
	if bcrypt.CompareHashAndPassword(s.hash, []byte(r.PostForm.Get("password"))) != nil {
		s.opts.Log.Warn("dashboard login refused", "client", clientAddr(r))
		s.render(w, http.StatusUnauthorized, "login.html", "Wrong password.")
		return
	}
	token, err := newToken()
	if err != nil {
		http.Error(w, "no session", http.StatusInternalServerError)
		return
	}
	now := s.opts.Now()
	s.mu.Lock()
	for t, exp := range s.sessions {
		if now.After(exp) {
			delete(s.sessions, t)
		}
	}
	s.sessions[token] = now.Add(s.opts.SessionTTL)
	s.mu.Unlock()
	http.SetCookie(w, sessionCookie(r, token, int(s.opts.SessionTTL.Seconds())))
	s.opts.Log.Info("dashboard login", "client", clientAddr(r))
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(CookieName); err == nil {
		s.mu.Lock()
		delete(s.sessions, c.Value)
		s.mu.Unlock()
	}
	http.SetCookie(w, sessionCookie(r, "", -1))
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// sessionCookie carries token for maxAge seconds (-1: delete it): never
// to scripts or other sites, and only over TLS when the page came so.
func sessionCookie(r *http.Request, token string, maxAge int) *http.Cookie {
	return &http.Cookie{Name: CookieName, Value: token, Path: "/", MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil}
}

// allow takes a login attempt from addr's bucket and the shared one.
func (s *Server) allow(addr string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.limiters[addr]
	if !ok {
		// Bound the table: a full bucket is the same as a forgotten one.
		if len(s.limiters) >= 10000 {
			for a, old := range s.limiters {
				if old.TokensAt(s.opts.Now()) >= float64(s.opts.LoginBurst) {
					delete(s.limiters, a)
				}
			}
		}
		l = rate.NewLimiter(rate.Every(s.opts.LoginEvery), s.opts.LoginBurst)
		s.limiters[addr] = l
	}
	now := s.opts.Now()
	return l.AllowN(now, 1) && s.total.AllowN(now, 1)
}

func (s *Server) index(w http.ResponseWriter, r *http.Request) {
	s.render(w, http.StatusOK, "index.html", "")
}

func (s *Server) mesh(w http.ResponseWriter, r *http.Request) {
	body, err := s.currentView(r.Context())
	if err != nil {
		s.opts.Log.Warn("dashboard: read the mesh", "err", err)
		http.Error(w, "cannot read the cluster: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}

// currentView returns the view, read at most once per refresh interval
// whoever asks: many open pages cost one read.
func (s *Server) currentView(ctx context.Context) ([]byte, error) {
	s.viewMu.Lock()
	defer s.viewMu.Unlock()
	now := s.opts.Now()
	if s.view != nil && now.Sub(s.viewTime) < s.opts.Refresh/2 {
		return s.view, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	m, err := s.opts.Load(ctx)
	if err != nil {
		return nil, err
	}
	body, err := json.Marshal(NewView(m, s.opts.Reports))
	if err != nil {
		return nil, err
	}
	s.view, s.viewTime = body, now
	return body, nil
}

func (s *Server) static(name, contentType string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		b, err := assets.ReadFile(name)
		if err != nil {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", contentType)
		_, _ = w.Write(b)
	}
}

func (s *Server) render(w http.ResponseWriter, code int, page, message string) {
	var b bytes.Buffer
	if err := s.pages.ExecuteTemplate(&b, page, map[string]any{"Message": message, "Refresh": s.opts.Refresh.Milliseconds()}); err != nil {
		http.Error(w, "page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write(b.Bytes())
}

// clientAddr is the connection's address without the port. Proxy headers
// are not trusted: anyone could send them.
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return strings.TrimSpace(host)
}

func newToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// HTTPServer returns an http.Server for s on addr, with timeouts that
// keep slow clients from holding connections.
func (s *Server) HTTPServer(addr string) *http.Server {
	return &http.Server{Addr: addr, Handler: s, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute}
}
