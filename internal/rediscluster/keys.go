package rediscluster

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/gomodule/redigo/redis"
)

// ErrCrossSlot is wrapped by the error for a command whose keys lie in
// more than one hash slot, which no single node can run.
var ErrCrossSlot = errors.New("rediscluster: keys in different hash slots")

// ErrUnsupported is wrapped by the error for a command that keeps state on
// one connection across commands (transactions, subscriptions), which a
// connection spreading commands over nodes cannot honour.
var ErrUnsupported = errors.New("rediscluster: not supported on a routing connection")

// Where a command goes, besides the slot of its key (commandSlot).
const (
	keyless   = -1 // to the node of the connection's last keyed command
	broadcast = -2 // to every primary (SCRIPT LOAD)
)

// keyKind is where a command's keys are among its arguments.
type keyKind int

const (
	firstKey    keyKind = iota // key first: GET, SET, ZADD, HGETALL, PEXPIRE, …
	noKey                      // keyless: see route
	unsupported                // needs one node for several commands
	allKeys                    // key key …
	pairKeys                   // key value key value …
	twoKeys                    // source destination …
	scriptKeys                 // script numkeys key… arg…
	blockKeys                  // key… timeout
)

// kindOf classifies cmd (upper case). A keyless command goes to the node
// the connection sent its last keyed command to, which is what makes WAIT
// after a write count that write's replicas. Every command not listed has
// its key first; one whose key is elsewhere (OBJECT ENCODING key) is sent
// by its second word, and the node's MOVED reply corrects that. Only some
// commands with several keys are listed, to be refused before they are sent
// when the keys span slots; a node refuses the others with CROSSSLOT.
//
// Transactions and subscriptions are unsupported: the commands after MULTI
// or SUBSCRIBE would all have to go to one node. Use
// NodePool(PrimaryFor(key)) for them.
func kindOf(cmd string) keyKind {
	switch cmd {
	case "PING", "ECHO", "WAIT", "WAITAOF", "INFO", "SCRIPT", "FUNCTION", "CLIENT", "CLUSTER", "PUBLISH",
		"ROLE", "DBSIZE", "FLUSHALL", "FLUSHDB", "CONFIG", "TIME", "READONLY", "READWRITE", "ASKING", "AUTH",
		"HELLO", "SELECT", "COMMAND", "DEBUG", "SLOWLOG", "LATENCY", "MEMORY", "SAVE", "BGSAVE",
		"BGREWRITEAOF", "LASTSAVE", "SHUTDOWN", "REPLICAOF", "SLAVEOF", "ACL", "MODULE", "KEYS", "SCAN",
		"RANDOMKEY", "SWAPDB", "LOLWUT", "FAILOVER", "QUIT", "RESET":
		return noKey
	case "MULTI", "EXEC", "DISCARD", "WATCH", "UNWATCH", "SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE",
		"UNSUBSCRIBE", "PUNSUBSCRIBE", "SUNSUBSCRIBE", "MONITOR":
		return unsupported
	case "DEL", "EXISTS", "UNLINK", "TOUCH", "MGET", "SINTER", "SUNION", "SDIFF", "SINTERSTORE",
		"SUNIONSTORE", "SDIFFSTORE", "PFCOUNT", "PFMERGE":
		return allKeys
	case "MSET", "MSETNX":
		return pairKeys
	case "RENAME", "RENAMENX", "RPOPLPUSH", "BRPOPLPUSH", "SMOVE", "LMOVE", "BLMOVE", "COPY":
		return twoKeys
	case "EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "FCALL", "FCALL_RO":
		return scriptKeys
	case "BLPOP", "BRPOP", "BZPOPMIN", "BZPOPMAX":
		return blockKeys
	}
	return firstKey
}

// commandSlot returns the hash slot cmd's keys lie in, or keyless, or
// broadcast (SCRIPT LOAD). It fails for a command whose keys span slots and
// for one this package cannot route.
func commandSlot(cmd string, args []any) (int, error) {
	cmd = strings.ToUpper(cmd)
	kind := kindOf(cmd)
	switch {
	case kind == unsupported:
		return 0, fmt.Errorf("%w: %s", ErrUnsupported, cmd)
	case cmd == "SCRIPT" && len(args) > 0 && strings.EqualFold(argString(args[0]), "LOAD"):
		return broadcast, nil
	case kind == noKey:
		return keyless, nil
	}
	keys, err := commandKeys(kind, cmd, args)
	if err != nil || len(keys) == 0 {
		return keyless, err
	}
	first := argString(keys[0])
	slot := Slot(first)
	for _, k := range keys[1:] {
		if key := argString(k); Slot(key) != slot {
			return 0, fmt.Errorf("%w: %s %q (slot %d) and %q (slot %d)", ErrCrossSlot, cmd, first, slot, key, Slot(key))
		}
	}
	return slot, nil
}

// commandKeys returns the arguments of cmd that are keys.
func commandKeys(kind keyKind, cmd string, args []any) ([]any, error) {
	switch kind {
	case scriptKeys:
		if len(args) < 2 {
			return nil, nil // the server explains
		}
		n, err := strconv.Atoi(argString(args[1]))
		if err != nil || n < 0 || 2+n > len(args) {
			return nil, fmt.Errorf("rediscluster: %s: bad number of keys %v", cmd, args[1])
		}
		return args[2 : 2+n], nil
	case allKeys:
		return args, nil
	case pairKeys:
		keys := make([]any, 0, (len(args)+1)/2)
		for i := 0; i < len(args); i += 2 {
			keys = append(keys, args[i])
		}
		return keys, nil
	case twoKeys:
		return args[:min(2, len(args))], nil
	case blockKeys:
		if len(args) > 1 {
			return args[:len(args)-1], nil
		}
	}
	return args[:min(1, len(args))], nil
}

// argString returns an argument as redigo writes it to the server.
func argString(a any) string {
	switch a := a.(type) {
	case string:
		return a
	case []byte:
		return string(a)
	case redis.Argument:
		return argString(a.RedisArg())
	case bool:
		if a {
			return "1"
		}
		return "0"
	case nil:
		return ""
	}
	return fmt.Sprint(a)
}
