package rpc

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Argon2id parameters: OWASP's recommended minimum (19 MiB, 2 passes, 1
// lane; the memory is configurable). They travel inside each hash, so they
// can be raised later without invalidating stored passwords.
const (
	DefaultPasswordMemoryKiB = 19 * 1024
	argonTime                = 2
	argonThreads             = 1
	argonKeyLen              = 32
	argonSaltLen             = 16
)

var b64 = base64.RawStdEncoding

// argonSlots bounds the hashes computed at once: each holds its memory
// (19 MiB by default) and a CPU, so that more at once (a flood of sign-ups
// or log-ins) would only add memory.
var argonSlots = make(chan struct{}, runtime.GOMAXPROCS(0))

// argonKey is argon2.IDKey, waiting for a free slot.
func argonKey(password, salt []byte, passes, memoryKiB uint32, threads uint8, keyLen uint32) []byte {
	argonSlots <- struct{}{}
	defer func() { <-argonSlots }()
	return argon2.IDKey(password, salt, passes, memoryKiB, threads, keyLen)
}

// hashPassword returns an argon2id hash of password in PHC string format,
// using memoryKiB of memory.
func hashPassword(password string, memoryKiB uint32) string {
	salt := make([]byte, argonSaltLen)
	rand.Read(salt)
	key := argonKey([]byte(password), salt, argonTime, memoryKiB, argonThreads, argonKeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, memoryKiB, argonTime, argonThreads, b64.EncodeToString(salt), b64.EncodeToString(key))
}

// checkPassword reports whether password matches a hash made by
// hashPassword, in constant time.
func checkPassword(password, hash string) (bool, error) {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false, errors.New("not an argon2id hash")
	}
	var version int
	var memory, passes uint32
	var threads uint8
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return false, fmt.Errorf("unsupported argon2 version %q", parts[2])
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &memory, &passes, &threads); err != nil {
		return false, fmt.Errorf("parsing argon2 parameters: %w", err)
	}
	salt, err := b64.DecodeString(parts[4])
	if err != nil {
		return false, fmt.Errorf("decoding salt: %w", err)
	}
	want, err := b64.DecodeString(parts[5])
	if err != nil {
		return false, fmt.Errorf("decoding key: %w", err)
	}
	got := argonKey([]byte(password), salt, passes, memory, threads, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}
