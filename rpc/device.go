package rpc

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/pods-dev/pods/db"
)

// deviceTokenLifetime is how long a device token counts as proof that its
// device logged in to its account before.
const deviceTokenLifetime = 365 * 24 * time.Hour

// deviceTokens mints and checks device tokens: a user id, the time of
// issue and a random nonce (each device's token is its own), signed with a
// key every node reads from the database. Nothing is stored per token.
type deviceTokens struct {
	pool *db.Pool
	mu   sync.Mutex
	key  []byte // read at the first use
}

// A device token is base64url of: the user id (16 bytes), the Unix second
// it was issued (8 bytes), a random nonce (8 bytes), and the first 16
// bytes of HMAC-SHA256 of those.
const (
	deviceTokenSigned = 16 + 8 + 8
	deviceTokenLen    = deviceTokenSigned + 16
)

func (d *deviceTokens) signingKey(ctx context.Context) ([]byte, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.key == nil {
		key, err := db.ServerSecret(ctx, d.pool, "device_tokens")
		if err != nil {
			return nil, err
		}
		d.key = key
	}
	return d.key, nil
}

// sign returns the MAC of a token's signed part, cut to the token's length.
func sign(key, signed []byte) []byte {
	mac := hmac.New(sha256.New, key)
	mac.Write(signed)
	return mac.Sum(nil)[:deviceTokenLen-deviceTokenSigned]
}

// mint returns a new device token of userID.
func (d *deviceTokens) mint(ctx context.Context, userID string) (string, error) {
	key, err := d.signingKey(ctx)
	if err != nil {
		return "", err
	}
	id, err := uuid.Parse(userID)
	if err != nil {
		return "", err
	}
	b := make([]byte, deviceTokenSigned, deviceTokenLen)
	copy(b, id[:])
	binary.BigEndian.PutUint64(b[16:], uint64(time.Now().Unix()))
	rand.Read(b[24:deviceTokenSigned])
	return base64.RawURLEncoding.EncodeToString(append(b, sign(key, b)...)), nil
}

// user returns the user id of a correctly signed device token within its
// lifetime, written exactly as minted (the decoder would skip line breaks
// in it, and each way of writing one token would get a limit of its own),
// and false for any other string.
func (d *deviceTokens) user(ctx context.Context, token string) (string, bool, error) {
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(b) != deviceTokenLen || base64.RawURLEncoding.EncodeToString(b) != token {
		return "", false, nil
	}
	key, err := d.signingKey(ctx)
	if err != nil {
		return "", false, err
	}
	issued := time.Unix(int64(binary.BigEndian.Uint64(b[16:24])), 0)
	if !hmac.Equal(b[deviceTokenSigned:], sign(key, b[:deviceTokenSigned])) || time.Since(issued) > deviceTokenLifetime {
		return "", false, nil
	}
	return uuid.UUID(b[:16]).String(), true, nil
}
