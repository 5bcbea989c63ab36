package rediscluster

import "testing"

func TestSlotMatchesRedis(t *testing.T) {
	// Expected values from the Redis Cluster specification (CRC16 of
	// "123456789" is 0x31C3) and from CLUSTER KEYSLOT on Redis 7.
	for _, tc := range []struct {
		key  string
		slot int
	}{
		{"123456789", 0x31C3},
		{"foo", 12182},
		{"bar", 5061},
		{"{user1000}.following", Slot("user1000")},
		{"foo{}{bar}", Slot("foo{}{bar}")}, // empty first tag: whole key hashed
		{"foo{{bar}}zap", Slot("{bar")},
		{"foo{bar}{zap}", Slot("bar")},
	} {
		if got := Slot(tc.key); got != tc.slot {
			t.Errorf("Slot(%q) = %d, want %d", tc.key, got, tc.slot)
		}
	}
	if Slot("foo{}{bar}") != int(crc16("foo{}{bar}")%SlotCount) {
		t.Errorf("an empty tag must hash the whole key")
	}
}
