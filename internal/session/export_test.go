package session

// ScriptSources returns the source of every Lua script a RedisStore runs,
// as Redis receives it (shebang and shared library included), by name: for
// tests that check what each script touches.
func ScriptSources() map[string]string {
	s := NewRedisStore(nil, Options{})
	sources := map[string]string{
		"commit":       commitLua,
		"delete":       deleteLua,
		"create":       refusedWhenFull + libLua + createLua,
		"revoke":       libLua + revokeLua,
		"revoke_user":  s.revokeUserSrc,
		"end_replaced": endReplacedLua,
	}
	for name, l := range map[string]struct{ pruning, readOnly string }{
		"list_user":      {listUserLua, libLua + listUserReadOnlyLua},
		"list_user_keys": {libLua + listUserKeysLua, libLua + listUserKeysReadOnlyLua},
		"count_users":    {libLua + countUsersLua, libLua + countUsersReadOnlyLua},
		"count":          {countLua, countReadOnlyLua},
		"recent_keys":    {recentKeysLua, recentKeysReadOnlyLua},
	} {
		sources[name] = l.pruning
		sources[name+"_readonly"] = readOnly + l.readOnly
	}
	return sources
}
