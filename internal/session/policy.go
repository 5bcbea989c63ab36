package session

import (
	"fmt"
	"slices"
	"time"
)

// Policy is how long one kind of session lasts and how many sessions one
// user may hold.
type Policy struct {
	IdleTimeout time.Duration
	Lifetime    time.Duration
	Limit       Limit
}

// Policies chooses each session's policy from its user's role and whether
// the user asked to stay signed in ("keep me signed in"). The role is the
// one the session was started with.
type Policies struct {
	// Default is the policy of a role ByRole does not list.
	Default Policy
	// ByRole overrides Default for some roles.
	ByRole map[string]Policy
	// Remembered gives the idle timeout and lifetime of a session whose
	// user asked to stay signed in, for the roles in RememberRoles; its
	// limit stays the role's. A zero Lifetime turns the option off.
	Remembered Policy
	// RememberRoles are the roles allowed to stay signed in.
	RememberRoles []string
}

// For returns the policy of a session of role, and whether it is a
// remembered one: remember is honoured only for the roles allowed.
func (p Policies) For(role string, remember bool) (Policy, bool) {
	pol, ok := p.ByRole[role]
	if !ok {
		pol = p.Default
	}
	if remember && p.CanRemember(role) {
		pol.IdleTimeout, pol.Lifetime = p.Remembered.IdleTimeout, p.Remembered.Lifetime
		return pol, true
	}
	return pol, false
}

// CanRemember reports whether sessions of role may stay signed in.
func (p Policies) CanRemember(role string) bool {
	return p.Remembered.Lifetime > 0 && slices.Contains(p.RememberRoles, role)
}

// Longest returns the longest idle timeout and lifetime any session may
// have: what the store must keep sessions and tombstones for.
func (p Policies) Longest() (idle, lifetime time.Duration) {
	all := []Policy{p.Default}
	for _, pol := range p.ByRole {
		all = append(all, pol)
	}
	if len(p.RememberRoles) > 0 && p.Remembered.Lifetime > 0 {
		all = append(all, p.Remembered)
	}
	for _, pol := range all {
		idle, lifetime = max(idle, pol.IdleTimeout), max(lifetime, pol.Lifetime)
	}
	return idle, lifetime
}

// Validate reports a policy that cannot work: a timeout that is not
// positive, or an idle timeout longer than the lifetime.
func (p Policies) Validate() error {
	check := func(name string, pol Policy) error {
		switch {
		case pol.IdleTimeout <= 0 || pol.Lifetime <= 0:
			return fmt.Errorf("session policy %s: idle timeout and lifetime must be positive", name)
		case pol.IdleTimeout > pol.Lifetime:
			return fmt.Errorf("session policy %s: idle timeout %s exceeds lifetime %s", name, pol.IdleTimeout, pol.Lifetime)
		}
		return pol.Limit.check()
	}
	if err := check("default", p.Default); err != nil {
		return err
	}
	for role, pol := range p.ByRole {
		if err := check(role, pol); err != nil {
			return err
		}
	}
	if p.Remembered.Lifetime > 0 {
		r := p.Remembered
		r.Limit = Limit{}
		return check("keep me signed in", r)
	}
	return nil
}
