package session

import (
	"encoding/base64"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	testSecret    = "0123456789abcdef0123456789abcdef-current"
	testPrevious  = "0123456789abcdef0123456789abcdef-previous"
	testForeign   = "0123456789abcdef0123456789abcdef-foreign"
	testAAD       = "entraauth_main"
	testPlaintext = `{"o":"5d1c6f1a-0000-4000-8000-000000000001","n":"Alice"}`
)

var (
	testNow     = time.Unix(1700000000, 0)
	testExpires = testNow.Add(2 * time.Hour)
)

func newTestSealer(t testing.TB, secret string, previous ...string) *Sealer {
	t.Helper()
	s, err := NewSealer(secret, previous)
	if err != nil {
		t.Fatalf("NewSealer: %v", err)
	}
	return s
}

func seal(t testing.TB, s *Sealer, plaintext string) string {
	t.Helper()
	v, err := s.Seal([]byte(plaintext), testAAD, testExpires)
	if err != nil {
		t.Fatalf("Seal: %v", err)
	}
	return v
}

func TestNewSealer(t *testing.T) {
	long := strings.Repeat("s", 32)
	tests := []struct {
		name     string
		secret   string
		previous []string
		wantErr  string
	}{
		{name: "a 32-character secret is enough", secret: long},
		{name: "previous secrets of 32 characters are accepted", secret: long, previous: []string{long + "a", long + "b"}},
		{name: "the current secret repeated among the previous ones is accepted", secret: long, previous: []string{long}},
		{name: "an empty secret is refused", secret: "", wantErr: "at least 32 characters"},
		{name: "a 31-character secret is refused", secret: long[:31], wantErr: "at least 32 characters"},
		{name: "a short previous secret is refused and named by position", secret: long, previous: []string{long, "short"}, wantErr: "previous secret 2 is 5 characters long, it must be at least 32 characters"},
	}
	for _, tt := range tests {
		tt := tt
		t.Run(tt.name, func(t *testing.T) {
			s, err := NewSealer(tt.secret, tt.previous)
			if tt.wantErr == "" {
				if err != nil || s == nil {
					t.Fatalf("NewSealer: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("NewSealer error = %v, want one containing %q", err, tt.wantErr)
			}
			if !strings.HasPrefix(err.Error(), "session: ") {
				t.Errorf("error %q does not start with the package name", err)
			}
			if tt.secret != "" && strings.Contains(err.Error(), tt.secret) {
				t.Errorf("error %q reveals the secret", err)
			}
		})
	}
}

func TestSealOpen(t *testing.T) {
	s := newTestSealer(t, testSecret)
	tests := []struct {
		name      string
		plaintext string
	}{
		{name: "a session opens as it was sealed", plaintext: testPlaintext},
		{name: "an empty plaintext opens empty", plaintext: ""},
		{name: "binary plaintext survives", plaintext: "\x00\xff\n;\"=,"},
		{name: "a large plaintext survives", plaintext: strings.Repeat("g", 20000)},
	}
	for _, tt := range tests {
		tt := tt
		t.Run(tt.name, func(t *testing.T) {
			v := seal(t, s, tt.plaintext)
			if strings.ContainsAny(v, "=+/.;, ") {
				t.Errorf("sealed value %q is not unpadded base64url", v)
			}
			got, err := s.Open(v, testAAD, testNow)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if string(got) != tt.plaintext {
				t.Errorf("Open = %q, want %q", got, tt.plaintext)
			}
			if cap(got) != len(got) {
				t.Errorf("Open returned a slice with spare capacity %d: appending would write into the sealer's buffer", cap(got)-len(got))
			}
		})
	}
}

func TestSealIsRandomized(t *testing.T) {
	s := newTestSealer(t, testSecret)
	if a, b := seal(t, s, testPlaintext), seal(t, s, testPlaintext); a == b {
		t.Errorf("sealing twice gave the same value %q: nonces repeat", a)
	}
}

func TestSealRefuses(t *testing.T) {
	s := newTestSealer(t, testSecret)
	if _, err := s.Seal([]byte("x"), testAAD, time.Time{}); err == nil {
		t.Error("Seal without an expiry succeeded")
	}
	if _, err := s.Seal(make([]byte, maxPlaintext+1), testAAD, testExpires); err == nil {
		t.Error("Seal of a plaintext that Open would refuse succeeded")
	}
	v, err := s.Seal(make([]byte, maxPlaintext), testAAD, testExpires)
	if err != nil {
		t.Fatalf("Seal of the largest plaintext: %v", err)
	}
	if _, err := s.Open(v, testAAD, testNow); err != nil {
		t.Errorf("Open of the largest plaintext: %v", err)
	}
}

func TestOpenExpiry(t *testing.T) {
	s := newTestSealer(t, testSecret)
	v := seal(t, s, testPlaintext)
	tests := []struct {
		name    string
		now     time.Time
		wantErr error
	}{
		{name: "it opens long before expiry", now: testNow},
		{name: "it opens one second before expiry", now: testExpires.Add(-time.Second)},
		{name: "it is expired at the expiry", now: testExpires, wantErr: ErrExpired},
		{name: "it is expired after the expiry", now: testExpires.Add(24 * time.Hour), wantErr: ErrExpired},
	}
	for _, tt := range tests {
		tt := tt
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.Open(v, testAAD, tt.now)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("Open error = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestOpenTampered(t *testing.T) {
	s := newTestSealer(t, testSecret)
	v := seal(t, s, testPlaintext)
	raw, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil {
		t.Fatal(err)
	}
	ct := headerSize + nonceSize
	tag := len(raw) - tagSize
	tests := []struct {
		name     string
		from, to int
	}{
		{name: "a changed version byte is refused", from: 0, to: 1},
		{name: "a changed key id is refused", from: 1, to: headerSize},
		{name: "a changed nonce is refused", from: headerSize, to: ct},
		{name: "a changed expiry is refused", from: ct, to: ct + expirySize},
		{name: "a changed ciphertext is refused", from: ct + expirySize, to: tag},
		{name: "a changed tag is refused", from: tag, to: len(raw)},
	}
	for _, tt := range tests {
		tt := tt
		t.Run(tt.name, func(t *testing.T) {
			for i := tt.from; i < tt.to; i++ {
				for _, bit := range []byte{0x01, 0x80} {
					b := append([]byte(nil), raw...)
					b[i] ^= bit
					_, err := s.Open(base64.RawURLEncoding.EncodeToString(b), testAAD, testNow)
					if !errors.Is(err, ErrInvalid) {
						t.Fatalf("byte %d ^ %#x: Open error = %v, want ErrInvalid", i, bit, err)
					}
				}
			}
		})
	}
	t.Run("changing any character is refused", func(t *testing.T) {
		for i := 0; i < len(v); i++ {
			for _, c := range []byte{'A', 'B', 'g', 'Q', '_', '-', '=', '.', '\n'} {
				if v[i] == c {
					continue
				}
				w := v[:i] + string(c) + v[i+1:]
				if _, err := s.Open(w, testAAD, testNow); !errors.Is(err, ErrInvalid) {
					t.Fatalf("character %d -> %q: Open error = %v, want ErrInvalid", i, c, err)
				}
			}
		}
	})
	t.Run("a line break inserted anywhere is refused", func(t *testing.T) {
		for _, i := range []int{0, 1, len(v) / 2, len(v)} {
			w := v[:i] + "\r\n" + v[i:]
			if _, err := s.Open(w, testAAD, testNow); !errors.Is(err, ErrInvalid) {
				t.Fatalf("line break at %d: Open error = %v, want ErrInvalid", i, err)
			}
		}
	})
}

func TestOpenTruncated(t *testing.T) {
	s := newTestSealer(t, testSecret)
	v := seal(t, s, testPlaintext)
	for n := 0; n < len(v); n++ {
		if _, err := s.Open(v[:n], testAAD, testNow); !errors.Is(err, ErrInvalid) {
			t.Fatalf("first %d of %d characters: Open error = %v, want ErrInvalid", n, len(v), err)
		}
	}
	for n := 1; n < len(v); n++ {
		if _, err := s.Open(v[n:], testAAD, testNow); !errors.Is(err, ErrInvalid) {
			t.Fatalf("last %d of %d characters: Open error = %v, want ErrInvalid", len(v)-n, len(v), err)
		}
	}
	if _, err := s.Open(v+"AAAA", testAAD, testNow); !errors.Is(err, ErrInvalid) {
		t.Fatalf("extended value: Open error = %v, want ErrInvalid", err)
	}
}

func TestOpenWrongPurposeOrSecret(t *testing.T) {
	current := newTestSealer(t, testSecret)
	v := seal(t, current, testPlaintext)
	tests := []struct {
		name   string
		sealer *Sealer
		aad    string
	}{
		{name: "a value sealed for one cookie does not open as another", sealer: current, aad: testAAD + "_login"},
		{name: "a value sealed with aad does not open without it", sealer: current, aad: ""},
		{name: "a value does not open with an aad that only differs in case", sealer: current, aad: strings.ToUpper(testAAD)},
		{name: "a foreign secret does not open it", sealer: newTestSealer(t, testForeign), aad: testAAD},
		{name: "a foreign secret with our secret as a previous one still needs the key id to match", sealer: newTestSealer(t, testForeign, testPrevious), aad: testAAD},
	}
	for _, tt := range tests {
		tt := tt
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tt.sealer.Open(v, tt.aad, testNow); !errors.Is(err, ErrInvalid) {
				t.Fatalf("Open error = %v, want ErrInvalid", err)
			}
		})
	}
}

func TestOpenOddInput(t *testing.T) {
	s := newTestSealer(t, testSecret)
	tests := []struct {
		name  string
		value string
	}{
		{name: "an empty value is invalid", value: ""},
		{name: "padding only is invalid", value: "===="},
		{name: "non-base64 characters are invalid", value: strings.Repeat("*", 80)},
		{name: "standard base64 is invalid", value: strings.Repeat("+/", 40)},
		{name: "non-ASCII is invalid", value: strings.Repeat("é", 40)},
		{name: "zero bytes are invalid", value: strings.Repeat("A", 80)},
		{name: "a chunk count prefix is invalid", value: "2." + strings.Repeat("A", 80)},
		{name: "a huge value is invalid without decoding it", value: strings.Repeat("A", maxEncoded+4)},
	}
	for _, tt := range tests {
		tt := tt
		t.Run(tt.name, func(t *testing.T) {
			if _, err := s.Open(tt.value, testAAD, testNow); !errors.Is(err, ErrInvalid) {
				t.Fatalf("Open error = %v, want ErrInvalid", err)
			}
		})
	}
}

func TestKeyRotation(t *testing.T) {
	old := newTestSealer(t, testPrevious)
	rotated := newTestSealer(t, testSecret, testPrevious)
	oldValue := seal(t, old, testPlaintext)
	newValue := seal(t, rotated, testPlaintext)

	t.Run("a value sealed with a previous secret opens", func(t *testing.T) {
		got, err := rotated.Open(oldValue, testAAD, testNow)
		if err != nil || string(got) != testPlaintext {
			t.Fatalf("Open = %q, %v", got, err)
		}
	})
	t.Run("a previous secret is never used to seal", func(t *testing.T) {
		if _, err := old.Open(newValue, testAAD, testNow); !errors.Is(err, ErrInvalid) {
			t.Fatalf("the previous secret opened a new value: error = %v", err)
		}
		if _, err := newTestSealer(t, testSecret).Open(newValue, testAAD, testNow); err != nil {
			t.Fatalf("the current secret alone does not open a new value: %v", err)
		}
	})
	t.Run("a value from a previous secret still expires", func(t *testing.T) {
		if _, err := rotated.Open(oldValue, testAAD, testExpires); !errors.Is(err, ErrExpired) {
			t.Fatalf("Open error = %v, want ErrExpired", err)
		}
	})
	t.Run("a dropped previous secret no longer opens", func(t *testing.T) {
		if _, err := newTestSealer(t, testSecret).Open(oldValue, testAAD, testNow); !errors.Is(err, ErrInvalid) {
			t.Fatalf("Open error = %v, want ErrInvalid", err)
		}
	})
}

func TestOpenKeyIDCollision(t *testing.T) {
	// Key ids are short; two secrets with the same id must both still open.
	s := newTestSealer(t, testSecret, testPrevious)
	s.keys[1].id = s.keys[0].id
	prev := newTestSealer(t, testPrevious)
	prev.keys[0].id = s.keys[0].id
	for name, v := range map[string]string{
		"current":  seal(t, s, testPlaintext),
		"previous": seal(t, prev, testPlaintext),
	} {
		if got, err := s.Open(v, testAAD, testNow); err != nil || string(got) != testPlaintext {
			t.Errorf("value sealed with the %s secret: Open = %q, %v", name, got, err)
		}
	}
}

func TestSealerConcurrentUse(t *testing.T) {
	s := newTestSealer(t, testSecret, testPrevious)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 25; i++ {
				v, err := s.Seal([]byte(testPlaintext), testAAD, testExpires)
				if err == nil {
					_, err = s.Open(v, testAAD, testNow)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// FuzzOpen feeds sealed values and additional data to Open. yaegi test
// ignores Fuzz functions: TestOpenSeeds runs the seeds there.

// openSeed is one input of FuzzOpen.
type openSeed struct{ value, aad string }

// openSeeds are genuine values of s (the first two), a value of another
// secret, and empty, truncated and malformed ones.
func openSeeds(tb testing.TB, s *Sealer) []openSeed {
	return []openSeed{
		{seal(tb, s, testPlaintext), testAAD},
		{seal(tb, s, ""), testAAD},
		{seal(tb, newTestSealer(tb, testForeign), testPlaintext), testAAD},
		{seal(tb, s, testPlaintext), "another cookie"},
		{"", testAAD},
		{"AQAAAAA", testAAD},
		{"2." + strings.Repeat("A", 60), testAAD},
	}
}

// checkOpen is the property: Open either fails with ErrInvalid or
// ErrExpired, or returns a plaintext that Seal made, which sealed again
// opens again. It reports whether the value opened.
func checkOpen(t *testing.T, s *Sealer, value, aad string) bool {
	pt, err := s.Open(value, aad, testNow)
	if err != nil {
		if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrExpired) {
			t.Fatalf("Open error %v is neither ErrInvalid nor ErrExpired", err)
		}
		return false
	}
	again, err := s.Seal(pt, aad, testExpires)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Open(again, aad, testNow); err != nil {
		t.Fatal(err)
	}
	return true
}

func TestOpenSeeds(t *testing.T) {
	s := newTestSealer(t, testSecret, testPrevious)
	opened := 0
	for _, seed := range openSeeds(t, s) {
		if checkOpen(t, s, seed.value, seed.aad) {
			opened++
		}
	}
	if opened != 2 {
		t.Fatalf("%d seeds opened, want the 2 genuine ones", opened)
	}
}

func FuzzOpen(f *testing.F) {
	s := newTestSealer(f, testSecret, testPrevious)
	for _, seed := range openSeeds(f, s) {
		f.Add(seed.value, seed.aad)
	}
	f.Fuzz(func(t *testing.T, value, aad string) {
		checkOpen(t, s, value, aad)
	})
}

func BenchmarkOpen(b *testing.B) {
	s := newTestSealer(b, testSecret, testPrevious)
	v := seal(b, s, string(benchmarkSession(b)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := s.Open(v, testAAD, testNow); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSeal(b *testing.B) {
	s := newTestSealer(b, testSecret, testPrevious)
	pt := benchmarkSession(b)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := s.Seal(pt, testAAD, testExpires); err != nil {
			b.Fatal(err)
		}
	}
}

// benchmarkSession is a typical session: a user in 20 groups.
func benchmarkSession(b *testing.B) []byte {
	pt, err := testSession(20).Marshal()
	if err != nil {
		b.Fatal(err)
	}
	return pt
}
