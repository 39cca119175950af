package db

import "context"

// ServerSecret returns the secret called name, which every node shares
// (migrations make them).
func ServerSecret(ctx context.Context, q Querier, name string) ([]byte, error) {
	var secret []byte
	err := q.QueryRow(ctx, `SELECT secret FROM server_secrets WHERE name = $1`, name).Scan(&secret)
	return secret, translate(err, "reading server secret "+name)
}
