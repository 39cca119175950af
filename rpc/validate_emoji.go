package rpc

import (
	"unicode"
	"unicode/utf8"
)

// Limits of a reaction's emoji: enough for a ZWJ sequence such as a family
// (7 runes, 25 bytes) or a subdivision flag (7 runes, 28 bytes).
const (
	maxEmojiRunes = 8
	maxEmojiBytes = 32
)

// checkEmoji validates a reaction: a short run of emoji, that is, symbols
// and the characters that join and modify them, with at least one symbol.
// Letters, digits, spaces, punctuation and control characters are refused,
// so keycaps such as "1️⃣" are too.
func checkEmoji(s string) error {
	if s == "" {
		return invalid("emoji", "is required")
	}
	if !utf8.ValidString(s) || len(s) > maxEmojiBytes || utf8.RuneCountInString(s) > maxEmojiRunes {
		return invalid("emoji", "must be one emoji of at most 8 characters and 32 bytes")
	}
	symbols := 0
	for _, r := range s {
		switch {
		case isEmojiSymbol(r):
			symbols++
		case isEmojiJoiner(r):
		default:
			return invalid("emoji", "may hold only emoji")
		}
	}
	if symbols == 0 {
		return invalid("emoji", "must hold an emoji")
	}
	return nil
}

// isEmojiSymbol reports whether r can stand as an emoji by itself: a
// pictograph, dingbat or other symbol (which covers ©, ♥ and the regional
// indicators of flags).
func isEmojiSymbol(r rune) bool {
	return unicode.Is(unicode.So, r) || r >= 0x1F000 && r <= 0x1FAFF || r >= 0x2600 && r <= 0x27BF
}

// isEmojiJoiner reports whether r only joins or modifies emoji: the zero
// width joiner, the variation selectors and the tag characters of
// subdivision flags. (Skin tones are symbols.)
func isEmojiJoiner(r rune) bool {
	return r == 0x200D || r == 0xFE0E || r == 0xFE0F || r >= 0xE0020 && r <= 0xE007F
}
