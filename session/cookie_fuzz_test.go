package session

import (
	"errors"
	"net/http"
	"strings"
	"testing"
)

// The cookie fuzz targets. yaegi test ignores Fuzz functions, so the Test
// functions below run the same seeds and properties there too.

// chunkedFixture is a sealer and genuine session cookies sealed with it:
// Cookie headers for values of one, two and three chunks, and their
// plaintexts. Sealing is randomized and the fuzzing engine builds the
// fixture again in each worker process, so what identifies a genuine
// value is its plaintext: nothing else can open.
type chunkedFixture struct {
	sealer  *Sealer
	headers []string
	genuine map[string]bool // plaintexts
}

func newChunkedFixture(tb testing.TB) *chunkedFixture {
	tb.Helper()
	f := &chunkedFixture{sealer: newTestSealer(tb, testSecret, testPrevious), genuine: map[string]bool{}}
	for _, n := range []int{40, ChunkSize, 2 * ChunkSize} {
		plain := `{"o":"` + strings.Repeat("a", n) + `"}`
		sealed := seal(tb, f.sealer, plain)
		f.genuine[plain] = true
		h := http.Header{}
		if err := SetChunked(h, nil, CookieOptions{Name: testCookie}, sealed); err != nil {
			tb.Fatal(err)
		}
		var pairs []string
		for _, c := range (&http.Response{Header: h}).Cookies() {
			pairs = append(pairs, c.Name+"="+c.Value)
		}
		f.headers = append(f.headers, strings.Join(pairs, "; "))
	}
	return f
}

// seeds are the genuine headers and the ways an attacker bends them:
// reordered cookies, swapped or duplicated chunks, edited counts, chunks
// of two values mixed.
func (f *chunkedFixture) seeds() []string {
	three := strings.Split(f.headers[2], "; ")
	two := strings.Split(f.headers[1], "; ")
	name := func(p string) string { return p[:strings.IndexByte(p, '=')+1] }
	val := func(p string) string { return p[strings.IndexByte(p, '=')+1:] }
	out := append([]string{}, f.headers...)
	out = append(out,
		three[2]+"; "+three[0]+"; "+three[1],
		three[0]+"; "+name(three[1])+val(three[2])+"; "+name(three[2])+val(three[1]),
		three[0]+"; "+three[1]+"; "+three[1]+"; "+three[2],
		three[0]+"; "+two[1]+"; "+three[2],
		"entraauth_main=9"+val(three[0])[1:]+"; "+three[1]+"; "+three[2],
		"entraauth_main=03"+val(three[0])[1:]+"; "+three[1]+"; "+three[2],
		"entraauth_main=2"+val(three[0])[1:]+"; "+three[1]+"; "+three[2],
		three[0]+"; "+three[1]+"; "+three[2]+"; entraauth_main_3=AAAA",
		f.headers[0]+"; "+f.headers[0],
		"entraauth_main=; entraauth_main_1=x",
		"entraauth_main=1.; entraauth_main_login_abc=x",
		"entraauth_main=8.A; entraauth_main_1=A; entraauth_main_2=A; entraauth_main_3=A; entraauth_main_4=A; entraauth_main_5=A; entraauth_main_6=A; entraauth_main_7=A",
		"entraauth_main_1=x",
		"other=1",
		"",
		"entraauth_main=\"quoted\"",
		"entraauth_main="+strings.Repeat("A", ChunkSize+1),
	)
	return out
}

// check is the property: reading and opening a Cookie header never panics,
// fails only with this package's errors, and succeeds only for a genuine
// value, whatever the chunks' order in the header.
func (f *chunkedFixture) check(t *testing.T, header string) {
	r, _ := http.NewRequest(http.MethodGet, "https://app.contoso.example/", nil)
	r.Header.Set("Cookie", header)
	v, err := ReadChunked(r, testCookie)
	if err != nil {
		if !errors.Is(err, ErrInvalid) && !errors.Is(err, http.ErrNoCookie) {
			t.Fatalf("ReadChunked(%q) error %v is neither ErrInvalid nor ErrNoCookie", header, err)
		}
		return
	}
	if len(v) > MaxChunks*ChunkSize {
		t.Fatalf("ReadChunked returned %d characters, more than %d chunks hold", len(v), MaxChunks)
	}
	pt, err := f.sealer.Open(v, testAAD, testNow)
	if err != nil {
		if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrExpired) {
			t.Fatalf("Open error %v is neither ErrInvalid nor ErrExpired", err)
		}
		return
	}
	if !f.genuine[string(pt)] {
		t.Fatalf("a forged cookie header opened: %q", header)
	}
}

func TestOpenChunkedSeeds(t *testing.T) {
	f := newChunkedFixture(t)
	opened := 0
	for _, h := range f.seeds() {
		f.check(t, h)
		r, _ := http.NewRequest(http.MethodGet, "https://app.contoso.example/", nil)
		r.Header.Set("Cookie", h)
		if v, err := ReadChunked(r, testCookie); err == nil {
			if _, err := f.sealer.Open(v, testAAD, testNow); err == nil {
				opened++
			}
		}
	}
	// The three genuine headers, the three chunks in another order, and
	// the chunks with a stale extra one the count does not use.
	if opened != 5 {
		t.Fatalf("%d seeds opened, want the 3 genuine ones, 1 reordered and 1 with a stale chunk", opened)
	}
}

func FuzzOpenChunked(f *testing.F) {
	fx := newChunkedFixture(f)
	for _, h := range fx.seeds() {
		f.Add(h)
	}
	f.Fuzz(func(t *testing.T, header string) {
		fx.check(t, header)
	})
}

// checkRoundTrip is the property of SetChunked: a value it accepts comes
// back whole from ReadChunked, over at most MaxChunks cookies of at most
// ChunkSize characters; one it refuses adds no header.
func checkRoundTrip(t *testing.T, value string) {
	h := http.Header{}
	err := SetChunked(h, nil, CookieOptions{Name: testCookie, Secure: true}, value)
	if err != nil {
		if len(h) != 0 {
			t.Fatalf("SetChunked failed (%v) but wrote %v", err, h)
		}
		return
	}
	cookies := (&http.Response{Header: h}).Cookies()
	if len(cookies) == 0 || len(cookies) > MaxChunks || len(cookies) != len(h.Values("Set-Cookie")) {
		t.Fatalf("%d cookies for %d Set-Cookie lines", len(cookies), len(h.Values("Set-Cookie")))
	}
	j := jar{}
	j.apply(h)
	for name, v := range j {
		if len(v) > ChunkSize || !IsChunkName(testCookie, name) {
			t.Fatalf("cookie %s of %d characters", name, len(v))
		}
	}
	got, err := ReadChunked(j.request(), testCookie)
	if err != nil || got != value {
		t.Fatalf("round trip of %q: got %q, %v", value, got, err)
	}
}

func roundTripSeeds() []string {
	return []string{
		"a", "A.B", "1.x", ".", "..", strings.Repeat("x", ChunkSize), strings.Repeat("x", ChunkSize+1),
		"9." + strings.Repeat("y", 2*ChunkSize), strings.Repeat("z", MaxChunks*ChunkSize-2),
		strings.Repeat("z", MaxChunks*ChunkSize), "a;b", "a b", "\"q\"", "a,b", "é",
	}
}

func TestChunkRoundTripSeeds(t *testing.T) {
	for _, v := range roundTripSeeds() {
		checkRoundTrip(t, v)
	}
}

func FuzzChunkRoundTrip(f *testing.F) {
	for _, v := range roundTripSeeds() {
		f.Add(v)
	}
	f.Fuzz(checkRoundTrip)
}
