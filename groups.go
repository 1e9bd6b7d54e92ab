package entraauth

import (
	"strings"
	"sync"
)

// groupRules remembers, per session (cookie name and secret), every group
// that some router's allowedGroups names. Traefik creates all middlewares
// of a configuration when it loads it, so by the time a user signs in it
// knows which groups any router sharing the session may ask about. A user in
// more than 200 groups (a groups overage) then keeps only those in the
// session cookie instead of hundreds it could not hold.
//
// It is package-level so that it outlives Traefik's reloads, bounded by
// maxGroupKeys sessions and maxGroupsPerKey groups each; groups of rules
// removed from the configuration stay until the process restarts, which
// only keeps a few more groups in some cookies.
var groupRules = struct {
	sync.Mutex
	byKey map[string]map[string]bool
}{byKey: map[string]map[string]bool{}}

const (
	maxGroupKeys    = 64
	maxGroupsPerKey = 10000
)

func registerGroups(key string, groups []string) {
	if len(groups) == 0 {
		return
	}
	groupRules.Lock()
	defer groupRules.Unlock()
	set := groupRules.byKey[key]
	if set == nil {
		if len(groupRules.byKey) >= maxGroupKeys {
			groupRules.byKey = map[string]map[string]bool{}
		}
		set = map[string]bool{}
		groupRules.byKey[key] = set
	}
	for _, g := range groups {
		if len(set) < maxGroupsPerKey {
			set[strings.ToLower(g)] = true
		}
	}
}

// neededGroups keeps, of a user's groups, those that a router sharing the
// session names in its rules.
func neededGroups(key string, groups []string) []string {
	groupRules.Lock()
	defer groupRules.Unlock()
	set := groupRules.byKey[key]
	var out []string
	for _, g := range groups {
		if set[strings.ToLower(g)] {
			out = append(out, g)
		}
	}
	return out
}

// groupsNamed reports whether some router sharing the session names groups
// in its rules: then every router resolves a groups overage, so that a
// session that one signed in or renewed serves the others.
func groupsNamed(key string) bool {
	groupRules.Lock()
	defer groupRules.Unlock()
	return len(groupRules.byKey[key]) > 0
}
