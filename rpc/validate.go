package rpc

import (
	"fmt"
	"strings"
	"time"
	_ "time/tzdata" // time zones must resolve on machines without a zoneinfo database
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
)

// Limits of user input, in characters (runes).
const (
	maxBodyLen        = 4000
	maxDisplayNameLen = 64
	maxPodNameLen     = 80
	maxHabitLen       = 200
	maxIdempotencyLen = 64
	maxInviteCodeLen  = 32 // codes are shorter; more is surely a typo
	minPasswordLen    = 8
	maxPasswordLen    = 256
	maxListLimit      = 200
	defaultListLimit  = 50
)

// checkText validates free text: see checkOptionalText, and something
// visible in it (not only spaces and invisible characters).
func checkText(field, s string, max int) error {
	if err := checkOptionalText(field, s, max); err != nil {
		return err
	}
	if strings.IndexFunc(s, visible) < 0 {
		return invalid(field, "must not be empty")
	}
	return nil
}

// checkLine validates a name: see checkText, and on one line (no tab or
// line break, the Unicode line and paragraph separators included).
func checkLine(field, s string, max int) error {
	if err := checkText(field, s, max); err != nil {
		return err
	}
	if strings.ContainsAny(s, "\t\n\r\u2028\u2029") {
		return invalid(field, "must be one line")
	}
	return nil
}

// checkOptionalText validates free text that may be empty: valid UTF-8, at
// most max runes, without control characters but tab and line breaks (NUL
// cannot even be stored) or the bidirectional controls that make text
// show in another order than it is written (U+202A–U+202E,
// U+2066–U+2069: a name could pass for another).
func checkOptionalText(field, s string, max int) error {
	switch {
	case !utf8.ValidString(s):
		return invalid(field, "must be valid UTF-8")
	case strings.IndexByte(s, 0) >= 0:
		return invalid(field, "must not contain NUL characters")
	case utf8.RuneCountInString(s) > max:
		return invalid(field, fmt.Sprintf("must be at most %d characters", max))
	case strings.IndexFunc(s, func(r rune) bool { return unicode.IsControl(r) && r != '\t' && r != '\n' && r != '\r' }) >= 0:
		return invalid(field, "must not contain control characters")
	case strings.IndexFunc(s, func(r rune) bool { return r >= 0x202a && r <= 0x202e || r >= 0x2066 && r <= 0x2069 }) >= 0:
		return invalid(field, "must not contain bidirectional control characters")
	}
	return nil
}

// visible says whether r shows as something: not a space, a control or
// format character (zero-width space, joiners, BOM…), a mark that only
// changes the character before it (a variation selector, a combining
// accent), or one of the letters that render as nothing (the Hangul
// fillers, the blank Braille pattern).
func visible(r rune) bool {
	switch r {
	case 0x115f, 0x1160, 0x3164, 0xffa0, 0x2800:
		return false
	}
	return !unicode.IsSpace(r) && !unicode.IsControl(r) && !unicode.In(r, unicode.Cf, unicode.Mn)
}

// checkID validates a UUID field and returns it in canonical form.
func checkID(field, s string) (string, error) {
	if s == "" {
		return "", invalid(field, "is required")
	}
	id, err := uuid.Parse(s)
	if err != nil {
		return "", invalid(field, "must be a UUID")
	}
	return id.String(), nil
}

// checkHandle validates and normalizes a handle: 3–32 of a–z, 0–9, _ . -,
// case-insensitive.
func checkHandle(s string) (string, error) {
	h := strings.ToLower(strings.TrimSpace(s))
	if n := len(h); n < 3 || n > 32 {
		return "", invalid("handle", "must be 3 to 32 characters")
	}
	for _, r := range h {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '.' || r == '-') {
			return "", invalid("handle", "may hold only letters, digits, '_', '.' and '-'")
		}
	}
	return h, nil
}

// checkTimezone validates an IANA time zone name.
func checkTimezone(s string) error {
	switch s {
	case "", "Local", "localtime", "posixrules", "Factory": // files of the database, not zones
		return invalid("timezone", "must be an IANA time zone such as Europe/Berlin")
	}
	if _, err := time.LoadLocation(s); err != nil {
		return invalid("timezone", fmt.Sprintf("unknown time zone %q", s))
	}
	return nil
}

// checkIdempotencyKey validates a client's idempotency key: 1–64 printable
// characters.
func checkIdempotencyKey(s string, required bool) error {
	if s == "" {
		if required {
			return invalid("idempotency_key", "is required")
		}
		return nil
	}
	if !utf8.ValidString(s) || utf8.RuneCountInString(s) > maxIdempotencyLen {
		return invalid("idempotency_key", "must be 1 to 64 printable characters")
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return invalid("idempotency_key", "must be 1 to 64 printable characters")
		}
	}
	return nil
}
