package session

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"
)

const testCookie = "entraauth_main"

// jar is a browser's cookie store for one site: enough to replay what
// SetChunked and ClearChunked write.
type jar map[string]string

// apply stores and deletes cookies as a browser would for the Set-Cookie
// headers in h.
func (j jar) apply(h http.Header) {
	for _, c := range (&http.Response{Header: h}).Cookies() {
		if c.MaxAge < 0 {
			delete(j, c.Name)
		} else {
			j[c.Name] = c.Value
		}
	}
}

// request returns a request that carries the jar's cookies, in name order.
func (j jar) request() *http.Request {
	names := make([]string, 0, len(j))
	for name := range j {
		names = append(names, name)
	}
	sort.Strings(names)
	r := httptest.NewRequest(http.MethodGet, "https://app.contoso.example/", nil)
	for _, name := range names {
		r.AddCookie(&http.Cookie{Name: name, Value: j[name]})
	}
	return r
}

// requestWithCookieHeader returns a request with a raw Cookie header, for
// what no well-behaved browser sends.
func requestWithCookieHeader(cookie string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "https://app.contoso.example/", nil)
	r.Header.Set("Cookie", cookie)
	return r
}

// value returns n characters of base64url, like a sealed value.
func value(n int) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[(i*7+i/64)%len(alphabet)]
	}
	return string(b)
}

func setCookies(t *testing.T, h http.Header) []*http.Cookie {
	t.Helper()
	return (&http.Response{Header: h}).Cookies()
}

func TestChunkedRoundTrip(t *testing.T) {
	tests := []struct {
		name       string
		value      string
		wantChunks int
	}{
		{name: "a short value takes one cookie", value: value(100), wantChunks: 1},
		{name: "a value of exactly ChunkSize takes one cookie", value: value(ChunkSize), wantChunks: 1},
		{name: "a value one longer than ChunkSize takes two cookies", value: value(ChunkSize + 1), wantChunks: 2},
		{name: "a value of one and a half chunks takes two cookies", value: value(ChunkSize * 3 / 2), wantChunks: 2},
		{name: "the longest value takes eight cookies", value: value(MaxChunks*ChunkSize - 2), wantChunks: MaxChunks},
		{name: "a short value with a dot takes one cookie and survives", value: "a.b.c", wantChunks: 1},
		{name: "a value that starts like a count survives", value: "2.AAA", wantChunks: 1},
	}
	for _, tt := range tests {
		tt := tt
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			j := jar{}
			if err := SetChunked(h, j.request(), CookieOptions{Name: testCookie}, tt.value); err != nil {
				t.Fatalf("SetChunked: %v", err)
			}
			cookies := setCookies(t, h)
			if len(cookies) != tt.wantChunks {
				t.Fatalf("SetChunked wrote %d cookies, want %d", len(cookies), tt.wantChunks)
			}
			for i, c := range cookies {
				want := testCookie
				if i > 0 {
					want += "_" + strconv.Itoa(i)
				}
				if c.Name != want {
					t.Errorf("cookie %d is named %q, want %q", i, c.Name, want)
				}
				if len(c.Value) > ChunkSize {
					t.Errorf("cookie %s holds %d characters, more than ChunkSize", c.Name, len(c.Value))
				}
			}
			j.apply(h)
			got, err := ReadChunked(j.request(), testCookie)
			if err != nil {
				t.Fatalf("ReadChunked: %v", err)
			}
			if got != tt.value {
				t.Errorf("ReadChunked returned %d characters, not the %d written", len(got), len(tt.value))
			}
		})
	}
}

func TestSetChunkedRefuses(t *testing.T) {
	tests := []struct {
		name  string
		opts  CookieOptions
		value string
		want  string
	}{
		{name: "a value that needs nine cookies is refused", value: value(MaxChunks*ChunkSize - 1), want: "does not fit in 8 cookies"},
		{name: "an empty value is refused", value: "", want: "empty"},
		{name: "a semicolon is refused", value: "a;b", want: "cannot carry"},
		{name: "a space is refused", value: "a b", want: "cannot carry"},
		{name: "a quote is refused", value: `a"b`, want: "cannot carry"},
		{name: "non-ASCII is refused", value: "é", want: "cannot carry"},
		{name: "an invalid cookie name is refused", opts: CookieOptions{Name: "bad name"}, value: "a", want: "not a valid cookie name"},
		{name: "an empty cookie name is refused", opts: CookieOptions{Name: ""}, value: "a", want: "not a valid cookie name"},
		{name: "SameSite=None without Secure is refused", opts: CookieOptions{SameSite: http.SameSiteNoneMode}, value: "a", want: "SameSite=None"},
	}
	for _, tt := range tests {
		tt := tt
		t.Run(tt.name, func(t *testing.T) {
			if tt.opts.Name == "" && tt.want != "not a valid cookie name" {
				tt.opts.Name = testCookie
			}
			h := http.Header{}
			r := requestWithCookieHeader(testCookie + "_1=stale")
			err := SetChunked(h, r, tt.opts, tt.value)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("SetChunked error = %v, want one containing %q", err, tt.want)
			}
			if !strings.HasPrefix(err.Error(), "session: ") {
				t.Errorf("error %q does not start with the package name", err)
			}
			if len(h) != 0 {
				t.Errorf("SetChunked failed but wrote %v", h)
			}
		})
	}
}

func TestCookieAttributes(t *testing.T) {
	tests := []struct {
		name string
		opts CookieOptions
		want http.Cookie
	}{
		{
			name: "defaults are Path=/, SameSite=Lax, HttpOnly",
			opts: CookieOptions{Name: testCookie},
			want: http.Cookie{Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode},
		},
		{
			name: "the options are carried",
			opts: CookieOptions{Name: testCookie, Domain: "contoso.example", Path: "/app", Secure: true, MaxAge: 7200, SameSite: http.SameSiteStrictMode},
			want: http.Cookie{Domain: "contoso.example", Path: "/app", Secure: true, HttpOnly: true, MaxAge: 7200, SameSite: http.SameSiteStrictMode},
		},
		{
			name: "SameSite=None is carried when Secure",
			opts: CookieOptions{Name: testCookie, Secure: true, SameSite: http.SameSiteNoneMode},
			want: http.Cookie{Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteNoneMode},
		},
	}
	for _, tt := range tests {
		tt := tt
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			r := requestWithCookieHeader(testCookie + "_3=stale")
			if err := SetChunked(h, r, tt.opts, value(2*ChunkSize-2)); err != nil {
				t.Fatal(err)
			}
			ClearChunked(h, r, tt.opts)
			cookies := setCookies(t, h)
			// Set: the value, its chunk, the stale deletion; Clear: the value, the stale chunk.
			if len(cookies) != 5 {
				t.Fatalf("wrote %d cookies, want 5: %v", len(cookies), h["Set-Cookie"])
			}
			for i, c := range cookies {
				want := tt.want
				if i >= 2 {
					want.MaxAge = -1
				}
				got := http.Cookie{Domain: c.Domain, Path: c.Path, Secure: c.Secure, HttpOnly: c.HttpOnly, MaxAge: c.MaxAge, SameSite: c.SameSite}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("cookie %s: got %s, want %s", c.Name, h["Set-Cookie"][i], want.String())
				}
			}
		})
	}
}

func TestReadChunkedInvalid(t *testing.T) {
	a, b := value(10), value(12)
	nine := testCookie + "=9." + a
	for i := 1; i < 9; i++ {
		nine += "; " + testCookie + "_" + strconv.Itoa(i) + "=" + b
	}
	tests := []struct {
		name   string
		cookie string
	}{
		{name: "a count above MaxChunks is invalid", cookie: nine},
		{name: "a huge count is invalid", cookie: testCookie + "=99999999999999999999." + a},
		{name: "a count of zero is invalid", cookie: testCookie + "=0." + a},
		{name: "a negative count is invalid", cookie: testCookie + "=-2." + a + "; " + testCookie + "_1=" + b},
		{name: "a count with a plus sign is invalid", cookie: testCookie + "=+2." + a + "; " + testCookie + "_1=" + b},
		{name: "a count with a leading zero is invalid", cookie: testCookie + "=02." + a + "; " + testCookie + "_1=" + b},
		{name: "a count that is not a number is invalid", cookie: testCookie + "=x." + a + "; " + testCookie + "_1=" + b},
		{name: "an empty count is invalid", cookie: testCookie + "=." + a},
		{name: "a count with junk after it is invalid", cookie: testCookie + "=2x." + a + "; " + testCookie + "_1=" + b},
		{name: "a missing chunk is invalid", cookie: testCookie + "=3." + a + "; " + testCookie + "_1=" + b},
		{name: "a missing first chunk is invalid", cookie: testCookie + "=2." + a + "; " + testCookie + "_2=" + b},
		{name: "a chunk named with a leading zero does not count", cookie: testCookie + "=2." + a + "; " + testCookie + "_01=" + b},
		{name: "an empty chunk is invalid", cookie: testCookie + "=2." + a + "; " + testCookie + "_1="},
		{name: "a chunk longer than ChunkSize is invalid", cookie: testCookie + "=2." + a + "; " + testCookie + "_1=" + value(ChunkSize+1)},
		{name: "a first cookie longer than ChunkSize is invalid", cookie: testCookie + "=" + value(ChunkSize+1)},
		{name: "the cookie sent twice is invalid", cookie: testCookie + "=" + a + "; " + testCookie + "=" + b},
		{name: "the cookie sent twice with the same value is invalid", cookie: testCookie + "=" + a + "; " + testCookie + "=" + a},
		{name: "a chunk sent twice is invalid", cookie: testCookie + "=2." + a + "; " + testCookie + "_1=" + b + "; " + testCookie + "_1=" + a},
	}
	for _, tt := range tests {
		tt := tt
		t.Run(tt.name, func(t *testing.T) {
			got, err := ReadChunked(requestWithCookieHeader(tt.cookie), testCookie)
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("ReadChunked = %q, %v; want ErrInvalid", got, err)
			}
		})
	}
}

func TestReadChunked(t *testing.T) {
	tests := []struct {
		name   string
		cookie string
		want   string
	}{
		{name: "a single cookie is the value", cookie: testCookie + "=abc", want: "abc"},
		{name: "stale chunks next to a single cookie are ignored", cookie: testCookie + "_1=zzz; " + testCookie + "=abc", want: "abc"},
		{name: "chunks are joined in index order, not header order", cookie: testCookie + "_2=ghi; " + testCookie + "=3.abc; " + testCookie + "_1=def", want: "abcdefghi"},
		{name: "stale and duplicated chunks beyond the count are ignored", cookie: testCookie + "=2.abc; " + testCookie + "_1=def; " + testCookie + "_2=x; " + testCookie + "_2=y", want: "abcdef"},
		{name: "other cookies are ignored", cookie: "other=1; " + testCookie + "_login_abc=2; x" + testCookie + "=3; " + testCookie + "=abc", want: "abc"},
		{name: "a count of one is the rest of the value", cookie: testCookie + "=1.a.b", want: "a.b"},
	}
	for _, tt := range tests {
		tt := tt
		t.Run(tt.name, func(t *testing.T) {
			got, err := ReadChunked(requestWithCookieHeader(tt.cookie), testCookie)
			if err != nil || got != tt.want {
				t.Fatalf("ReadChunked = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	t.Run("no cookie is ErrNoCookie, not ErrInvalid", func(t *testing.T) {
		_, err := ReadChunked(requestWithCookieHeader(testCookie+"_1=abc; other=x"), testCookie)
		if !errors.Is(err, http.ErrNoCookie) || errors.Is(err, ErrInvalid) {
			t.Fatalf("ReadChunked error = %v, want http.ErrNoCookie", err)
		}
	})
}

// TestChunksDoNotMix checks that chunks put back in the wrong order, dropped
// with a rewritten count or taken from another session do not open: ReadChunked
// cannot tell, the sealed value's authentication does.
func TestChunksDoNotMix(t *testing.T) {
	s := newTestSealer(t, testSecret)
	sealed := func(t *testing.T, groups int) jar {
		t.Helper()
		b, err := testSession(groups).Marshal()
		if err != nil {
			t.Fatal(err)
		}
		v := seal(t, s, string(b))
		h := http.Header{}
		if err := SetChunked(h, nil, CookieOptions{Name: testCookie}, v); err != nil {
			t.Fatal(err)
		}
		j := jar{}
		j.apply(h)
		if len(j) != 3 {
			t.Fatalf("the test session takes %d cookies, want 3", len(j))
		}
		return j
	}
	other := sealed(t, 200)
	tests := []struct {
		name   string
		change func(j jar)
	}{
		{name: "swapped chunks do not open", change: func(j jar) {
			j[testCookie+"_1"], j[testCookie+"_2"] = j[testCookie+"_2"], j[testCookie+"_1"]
		}},
		{name: "a chunk of another session does not open", change: func(j jar) {
			j[testCookie+"_1"] = other[testCookie+"_1"]
		}},
		{name: "a dropped last chunk with a rewritten count does not open", change: func(j jar) {
			delete(j, testCookie+"_2")
			j[testCookie] = "2" + strings.TrimPrefix(j[testCookie], "3")
		}},
		{name: "a first chunk without its count does not open", change: func(j jar) {
			j[testCookie] = strings.TrimPrefix(j[testCookie], "3.")
		}},
	}
	for _, tt := range tests {
		tt := tt
		t.Run(tt.name, func(t *testing.T) {
			j := sealed(t, 201)
			tt.change(j)
			v, err := ReadChunked(j.request(), testCookie)
			if err == nil {
				_, err = s.Open(v, testAAD, testNow)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("ReadChunked then Open: error = %v, want ErrInvalid", err)
			}
		})
	}
}

func TestSetChunkedDeletesStaleChunks(t *testing.T) {
	opts := CookieOptions{Name: testCookie, Domain: "contoso.example", Path: "/", Secure: true, MaxAge: 3600}
	tests := []struct {
		name        string
		before      int // chunks the browser holds
		extra       []string
		after       int      // chunks written now
		wantDeleted []string // name suffixes
	}{
		{name: "three chunks shrinking to one delete two", before: 3, after: 1, wantDeleted: []string{"_1", "_2"}},
		{name: "eight chunks shrinking to two delete six", before: 8, after: 2, wantDeleted: []string{"_2", "_3", "_4", "_5", "_6", "_7"}},
		{name: "one chunk growing to three deletes nothing", before: 1, after: 3},
		{name: "same size deletes nothing", before: 2, after: 2},
		{name: "odd chunk names are deleted, other cookies are not", before: 1, extra: []string{testCookie + "_01", testCookie + "_42", testCookie + "_login_abc", "other"}, after: 1, wantDeleted: []string{"_01", "_42"}},
	}
	for _, tt := range tests {
		tt := tt
		t.Run(tt.name, func(t *testing.T) {
			j := jar{}
			h := http.Header{}
			if err := SetChunked(h, nil, opts, value(tt.before*ChunkSize-2)); err != nil {
				t.Fatal(err)
			}
			j.apply(h)
			for _, name := range tt.extra {
				j[name] = "x"
			}
			h = http.Header{}
			if err := SetChunked(h, j.request(), opts, value(tt.after*ChunkSize-2)); err != nil {
				t.Fatal(err)
			}
			var deleted []string
			for _, c := range setCookies(t, h) {
				if c.MaxAge >= 0 {
					continue
				}
				deleted = append(deleted, strings.TrimPrefix(c.Name, testCookie))
				if c.Domain != opts.Domain || c.Path != opts.Path || !c.Secure || !c.HttpOnly {
					t.Errorf("deletion %s does not match the cookie's attributes", c)
				}
			}
			sort.Strings(deleted)
			if !reflect.DeepEqual(deleted, tt.wantDeleted) {
				t.Errorf("deleted %q, want %q", deleted, tt.wantDeleted)
			}
			j.apply(h)
			for i := tt.after; i < MaxChunks; i++ {
				if _, ok := j[testCookie+"_"+strconv.Itoa(i)]; ok {
					t.Errorf("chunk %d is still in the browser", i)
				}
			}
			if _, ok := j["other"]; len(tt.extra) > 0 && !ok {
				t.Error("an unrelated cookie was deleted")
			}
			got, err := ReadChunked(j.request(), testCookie)
			if err != nil || got != value(tt.after*ChunkSize-2) {
				t.Errorf("ReadChunked after the update: %d characters, %v", len(got), err)
			}
		})
	}
}

func TestClearChunked(t *testing.T) {
	opts := CookieOptions{Name: testCookie, Path: "/"}
	tests := []struct {
		name   string
		cookie string
		want   []string
	}{
		{name: "the cookie and its chunks are deleted", cookie: testCookie + "=3.a; " + testCookie + "_1=b; " + testCookie + "_2=c", want: []string{testCookie, testCookie + "_1", testCookie + "_2"}},
		{name: "the cookie is deleted even when not sent", cookie: "other=1", want: []string{testCookie}},
		{name: "stray chunks are deleted", cookie: testCookie + "_5=x", want: []string{testCookie, testCookie + "_5"}},
		{name: "duplicated chunks are deleted once", cookie: testCookie + "_1=x; " + testCookie + "_1=y", want: []string{testCookie, testCookie + "_1"}},
		{name: "other cookies stay", cookie: testCookie + "_login_abc=1; " + testCookie + "x=2; other=3", want: []string{testCookie}},
	}
	for _, tt := range tests {
		tt := tt
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			ClearChunked(h, requestWithCookieHeader(tt.cookie), opts)
			var got []string
			for _, c := range setCookies(t, h) {
				if c.MaxAge != -1 || c.Value != "" {
					t.Errorf("cookie %s is not a deletion", c)
				}
				got = append(got, c.Name)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("deleted %q, want %q", got, tt.want)
			}
		})
	}
	t.Run("a nil request deletes the cookie", func(t *testing.T) {
		h := http.Header{}
		ClearChunked(h, nil, opts)
		if len(h["Set-Cookie"]) != 1 {
			t.Fatalf("Set-Cookie = %q", h["Set-Cookie"])
		}
	})
}

func TestIsChunkName(t *testing.T) {
	tests := []struct {
		name string
		want bool
	}{
		{name: testCookie, want: true},
		{name: testCookie + "_1", want: true},
		{name: testCookie + "_7", want: true},
		{name: testCookie + "_42", want: true},
		{name: testCookie + "_", want: false},
		{name: testCookie + "_x", want: false},
		{name: testCookie + "_1x", want: false},
		{name: testCookie + "_login_abc", want: false},
		{name: testCookie + "1", want: false},
		{name: "x" + testCookie, want: false},
		{name: "entraauth", want: false},
		{name: "", want: false},
	}
	for _, tt := range tests {
		tt := tt
		t.Run(tt.name, func(t *testing.T) {
			if got := IsChunkName(testCookie, tt.name); got != tt.want {
				t.Errorf("IsChunkName(%q, %q) = %v, want %v", testCookie, tt.name, got, tt.want)
			}
		})
	}
}

// TestLargeSessionRoundTrip follows a user in 200 groups through everything
// the plugin does with a session: marshal, seal, chunk, read, open, unmarshal.
func TestLargeSessionRoundTrip(t *testing.T) {
	s := newTestSealer(t, testSecret, testPrevious)
	want := testSession(200)
	b, err := want.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	v := seal(t, s, string(b))
	h := http.Header{}
	if err := SetChunked(h, nil, CookieOptions{Name: testCookie, Secure: true, MaxAge: 7200}, v); err != nil {
		t.Fatal(err)
	}
	if n := len(h["Set-Cookie"]); n != 3 {
		t.Errorf("a 200-group session (%d bytes of JSON, %d sealed) takes %d cookies, want 3", len(b), len(v), n)
	}
	j := jar{}
	j.apply(h)
	r := j.request()
	if n := len(r.Header.Get("Cookie")); n > 12000 {
		t.Errorf("the Cookie header is %d bytes", n)
	}
	read, err := ReadChunked(r, testCookie)
	if err != nil {
		t.Fatalf("ReadChunked: %v", err)
	}
	pt, err := s.Open(read, testAAD, testNow)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	got, err := Unmarshal(pt)
	if err != nil {
		t.Fatalf("Unmarshal: %v", err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("the session changed on the way: got %+v", got)
	}
}

// BenchmarkReadChunked reads a three-cookie session among other cookies, as
// on every signed-in request.
func BenchmarkReadChunked(b *testing.B) {
	h := http.Header{}
	if err := SetChunked(h, nil, CookieOptions{Name: testCookie}, value(3*ChunkSize-2)); err != nil {
		b.Fatal(err)
	}
	j := jar{"_ga": "GA1.2.3", "lang": "en"}
	j.apply(h)
	r := j.request()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := ReadChunked(r, testCookie); err != nil {
			b.Fatal(err)
		}
	}
}
