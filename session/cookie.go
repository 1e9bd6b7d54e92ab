package session

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// Browsers keep at least 4096 bytes per cookie (name, value and attributes)
// and servers commonly refuse request headers over 8 KB, so a value is spread
// over at most MaxChunks cookies of at most ChunkSize characters each.
const (
	// ChunkSize is the longest value one cookie carries.
	ChunkSize = 3800
	// MaxChunks is the most cookies one value is spread over.
	MaxChunks = 8
)

// A value spread over several cookies starts with its cookie count and a dot
// ("3.AbC..."). A dot never appears in a sealed (base64url) value, so a value
// without one is the whole value; a value that has one is written with a
// count even when it fits in one cookie.
const countSeparator = '.'

// CookieOptions are the attributes of the cookies SetChunked and ClearChunked
// write. The cookies are always HttpOnly.
type CookieOptions struct {
	// Name of the first cookie; the others are Name_1, Name_2, ...
	Name string
	// Domain, when set, shares the cookies with subdomains.
	Domain string
	// Path defaults to "/".
	Path string
	// Secure restricts the cookies to HTTPS.
	Secure bool
	// MaxAge in seconds; 0 makes browser-session cookies.
	MaxAge int
	// SameSite defaults to http.SameSiteLaxMode, which keeps the session on
	// top-level navigations from other sites (the sign-in redirect) and off
	// cross-site subrequests.
	SameSite http.SameSite
}

// SetChunked adds Set-Cookie headers to h that store value in opts.Name and,
// when value is longer than ChunkSize, in opts.Name_1, opts.Name_2, ... It
// also deletes the chunks that r still carries but the new value does not
// use (r may be nil). It fails, adding nothing, when value would need more than MaxChunks
// cookies or holds a character a cookie cannot carry.
func SetChunked(h http.Header, r *http.Request, opts CookieOptions, value string) error {
	if value == "" {
		return errors.New("session: cookie value is empty")
	}
	if i := invalidValueByte(value); i >= 0 {
		return fmt.Errorf("session: cookie value has the byte %q, which a cookie cannot carry", value[i])
	}
	if opts.SameSite == http.SameSiteNoneMode && !opts.Secure {
		return errors.New("session: browsers refuse SameSite=None cookies that are not Secure")
	}
	chunks, err := split(value)
	if err != nil {
		return err
	}
	lines := make([]string, 0, len(chunks))
	for i, c := range chunks {
		line, err := cookieLine(opts, chunkName(opts.Name, i), c, opts.MaxAge)
		if err != nil {
			return err
		}
		lines = append(lines, line)
	}
	for _, line := range lines {
		h.Add("Set-Cookie", line)
	}
	deleteCarried(h, r, opts, len(chunks))
	return nil
}

// ClearChunked adds Set-Cookie headers to h that delete opts.Name and every
// chunk of it that r (which may be nil) carries. It writes nothing for an
// invalid opts.Name, which SetChunked would have refused.
func ClearChunked(h http.Header, r *http.Request, opts CookieOptions) {
	if line, err := cookieLine(opts, opts.Name, "", -1); err == nil {
		h.Add("Set-Cookie", line)
	}
	deleteCarried(h, r, opts, 1)
}

// ReadChunked returns the value SetChunked stored under name in r's cookies.
// It returns an error wrapping http.ErrNoCookie when r has no cookie name,
// and one wrapping ErrInvalid when the chunks are inconsistent: a count that
// is not a number from 1 to MaxChunks, a missing, empty, oversized or
// duplicated chunk. Chunks that are reordered or come from different values
// are caught later, by Open.
func ReadChunked(r *http.Request, name string) (string, error) {
	var (
		first     string
		haveFirst bool
		chunks    [MaxChunks]string
		seen      [MaxChunks]int
	)
	n := len(name)
	for _, c := range r.Cookies() {
		// Most cookies are someone else's: one comparison skips them.
		if len(c.Name) < n || c.Name[:n] != name {
			continue
		}
		if len(c.Name) == n {
			if haveFirst {
				return "", fmt.Errorf("%w: cookie %s is sent twice", ErrInvalid, name)
			}
			first = c.Value
			haveFirst = true
			continue
		}
		// Duplicates of other chunks only matter if the count uses them.
		if i := chunkIndex(c.Name[n:]); i > 0 {
			chunks[i] = c.Value
			seen[i]++
		}
	}
	if !haveFirst {
		return "", fmt.Errorf("session: cookie %s: %w", name, http.ErrNoCookie)
	}
	if len(first) > ChunkSize {
		return "", fmt.Errorf("%w: cookie %s is longer than %d", ErrInvalid, name, ChunkSize)
	}
	dot := strings.IndexByte(first, countSeparator)
	if dot < 0 {
		return first, nil
	}
	count, err := strconv.Atoi(first[:dot])
	// Only the canonical spelling, so that "+2" or "02" are junk too.
	if err != nil || count < 1 || count > MaxChunks || first[0] < '1' || first[0] > '9' {
		return "", fmt.Errorf("%w: cookie %s does not start with a chunk count from 1 to %d", ErrInvalid, name, MaxChunks)
	}
	chunks[0] = first[dot+1:]
	for i := 1; i < count; i++ {
		switch {
		case seen[i] == 0:
			return "", fmt.Errorf("%w: chunk %s_%d of %d is missing", ErrInvalid, name, i, count)
		case seen[i] > 1:
			return "", fmt.Errorf("%w: chunk %s_%d is sent twice", ErrInvalid, name, i)
		case chunks[i] == "" || len(chunks[i]) > ChunkSize:
			return "", fmt.Errorf("%w: chunk %s_%d is empty or longer than %d", ErrInvalid, name, i, ChunkSize)
		}
	}
	return strings.Join(chunks[:count], ""), nil
}

// IsChunkName reports whether name is cookieName or one of its chunks
// (cookieName_ followed by digits), so that the cookies can be kept from
// upstream services.
func IsChunkName(cookieName, name string) bool {
	if name == cookieName {
		return true
	}
	n := len(cookieName)
	if len(name) < n+2 || name[:n] != cookieName || name[n] != '_' {
		return false
	}
	for i := n + 1; i < len(name); i++ {
		if name[i] < '0' || name[i] > '9' {
			return false
		}
	}
	return true
}

// split cuts value into the cookie values that carry it.
func split(value string) ([]string, error) {
	if len(value) <= ChunkSize && strings.IndexByte(value, countSeparator) < 0 {
		return []string{value}, nil
	}
	for n := 1; n <= MaxChunks; n++ {
		all := strconv.Itoa(n) + string(countSeparator) + value
		if len(all) > n*ChunkSize {
			continue
		}
		chunks := make([]string, n)
		for i := range chunks {
			end := (i + 1) * ChunkSize
			if end > len(all) {
				end = len(all)
			}
			chunks[i] = all[i*ChunkSize : end]
		}
		return chunks, nil
	}
	return nil, fmt.Errorf("session: a value of %d characters does not fit in %d cookies of %d", len(value), MaxChunks, ChunkSize)
}

// chunkName is the name of the i-th cookie of a value (0 is name itself).
func chunkName(name string, i int) string {
	if i == 0 {
		return name
	}
	return name + "_" + strconv.Itoa(i)
}

// chunkIndex returns i when suffix (what follows the cookie name) is "_i",
// spelt without leading zeros, with i from 1 to MaxChunks-1, else 0.
func chunkIndex(suffix string) int {
	if len(suffix) < 2 || suffix[0] != '_' || suffix[1] < '1' || suffix[1] > '9' {
		return 0
	}
	i, err := strconv.Atoi(suffix[1:])
	if err != nil || i >= MaxChunks {
		return 0
	}
	return i
}

// deleteCarried deletes the chunks of opts.Name that r carries, except the
// first keep cookies, which are being written.
func deleteCarried(h http.Header, r *http.Request, opts CookieOptions, keep int) {
	if r == nil {
		return
	}
	var deleted []string
	for _, c := range r.Cookies() {
		if c.Name == opts.Name || !IsChunkName(opts.Name, c.Name) || contains(deleted, c.Name) {
			continue
		}
		if i := chunkIndex(c.Name[len(opts.Name):]); i > 0 && i < keep {
			continue
		}
		if line, err := cookieLine(opts, c.Name, "", -1); err == nil {
			h.Add("Set-Cookie", line)
		}
		deleted = append(deleted, c.Name)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// cookieLine returns the Set-Cookie header value of one cookie; a negative
// maxAge deletes it.
func cookieLine(opts CookieOptions, name, value string, maxAge int) (string, error) {
	c := http.Cookie{
		Name:     name,
		Value:    value,
		Domain:   opts.Domain,
		Path:     opts.Path,
		MaxAge:   maxAge,
		Secure:   opts.Secure,
		HttpOnly: true,
		SameSite: opts.SameSite,
	}
	if c.Path == "" {
		c.Path = "/"
	}
	if c.SameSite == 0 {
		c.SameSite = http.SameSiteLaxMode
	}
	line := c.String()
	if line == "" {
		return "", fmt.Errorf("session: %q is not a valid cookie name", name)
	}
	return line, nil
}

// invalidValueByte returns the index of the first byte of value that
// http.Cookie.String would drop or quote, or -1.
func invalidValueByte(value string) int {
	for i := 0; i < len(value); i++ {
		b := value[i]
		if b <= ' ' || b >= 0x7f || b == '"' || b == ';' || b == '\\' || b == ',' {
			return i
		}
	}
	return -1
}
