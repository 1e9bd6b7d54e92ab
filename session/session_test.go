package session

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// testSession returns a realistic session of a user in the given number of
// groups (GUIDs, as Entra ID sends them).
func testSession(groups int) *Session {
	s := &Session{
		OID:               "5d1c6f1a-8e0b-4c3f-9a57-3f1e2d4c5b6a",
		TID:               "72f988bf-86f1-41af-91ab-2d7cd011db47",
		Name:              "Alice Example",
		PreferredUsername: "alice@contoso.example",
		Email:             "alice@contoso.example",
		Roles:             []string{"Reader", "Task.Write"},
		IssuedAt:          1700000000,
		Expires:           1700007200,
	}
	for i := 0; i < groups; i++ {
		s.Groups = append(s.Groups, fmt.Sprintf("%08x-%04x-4%03x-8%03x-%012x", i*2654435761%(1<<32), i, i%4096, (i*7)%4096, i*1000003))
	}
	return s
}

func TestSessionRoundTrip(t *testing.T) {
	tests := []struct {
		name    string
		session *Session
	}{
		{name: "a full session survives", session: testSession(3)},
		{name: "a session in 200 groups survives", session: testSession(200)},
		{name: "an empty session survives", session: &Session{}},
		{name: "names with quotes and non-ASCII survive", session: &Session{OID: "x", Name: `Zoë "Z" <O'Brien> & co`}},
	}
	for _, tt := range tests {
		tt := tt
		t.Run(tt.name, func(t *testing.T) {
			b, err := tt.session.Marshal()
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			got, err := Unmarshal(b)
			if err != nil {
				t.Fatalf("Unmarshal(%s): %v", b, err)
			}
			if !reflect.DeepEqual(got, tt.session) {
				t.Errorf("Unmarshal = %+v, want %+v", got, tt.session)
			}
		})
	}
}

func TestSessionMarshalIsCompact(t *testing.T) {
	s := testSession(1)
	b, err := s.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got := string(b)
	for _, long := range []string{"OID", "oid", "PreferredUsername", "preferred_username", "Groups", "Expires", "IssuedAt", "\": ", ", \"", "\n"} {
		if strings.Contains(got, long) {
			t.Errorf("Marshal = %s: contains %q", got, long)
		}
	}
	b, err = (&Session{OID: "x"}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `{"o":"x"}` {
		t.Errorf("Marshal of a session with only an OID = %s, want empty fields left out", b)
	}
}

func TestUnmarshalRejectsGarbage(t *testing.T) {
	tests := []struct {
		name string
		data string
	}{
		{name: "no bytes are invalid", data: ""},
		{name: "whitespace is invalid", data: " \n"},
		{name: "null is invalid", data: "null"},
		{name: "an array is invalid", data: `[{"o":"x"}]`},
		{name: "a string is invalid", data: `"o"`},
		{name: "a number is invalid", data: "42"},
		{name: "a truncated object is invalid", data: `{"o":"x"`},
		{name: "trailing data is invalid", data: `{"o":"x"}{}`},
		{name: "a wrongly typed field is invalid", data: `{"o":1}`},
		{name: "groups that are not strings are invalid", data: `{"g":[1,2]}`},
		{name: "binary junk is invalid", data: "\x00\xff{"},
	}
	for _, tt := range tests {
		tt := tt
		t.Run(tt.name, func(t *testing.T) {
			s, err := Unmarshal([]byte(tt.data))
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Unmarshal = %+v, %v; want ErrInvalid", s, err)
			}
		})
	}
}
