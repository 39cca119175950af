package moderator

import (
	"strings"
	"unicode"

	"github.com/jonreiter/govader"
)

// Scorer rates how hostile a short chat message is, locally, with VADER
// (a sentiment lexicon and rules tuned for social-media text). Sentiment is
// not hostility: "I failed again, feel terrible" is negative but hurts no
// one. So a message counts fully only when it is aimed at someone (it says
// "you"); otherwise its negativity is discounted, and laughter ("lol",
// "haha", 😂) halves it. A message aimed at someone is also as hostile as
// its worst word ("stupid" in an otherwise flat sentence).
type Scorer struct {
	vader *govader.SentimentIntensityAnalyzer
}

// HostileThreshold is the hostility at and above which a message counts
// as hostile.
const HostileThreshold = 0.5

// NewScorer loads the lexicon.
func NewScorer() *Scorer {
	return &Scorer{vader: govader.NewSentimentIntensityAnalyzer()}
}

// Score returns VADER's compound sentiment (-1 to 1) and the hostility
// (0 to 1) of text.
func (s *Scorer) Score(text string) (compound, hostility float64) {
	compound = s.vader.PolarityScores(text).Compound
	words := strings.FieldsFunc(strings.ToLower(text), func(r rune) bool {
		return !unicode.IsLetter(r) && r != '\''
	})
	aimed, worst := false, 0.0
	for _, w := range words {
		if secondPerson[w] {
			aimed = true
		}
		if v, ok := s.vader.Lexicon[w]; ok && v < worst {
			worst = v
		}
	}
	hostility = max(-compound, 0)
	if aimed {
		// Lexicon valences run from -4 to 4.
		hostility = max(hostility, -worst/4)
	} else {
		hostility *= 0.6
	}
	if laughs(text, words) {
		hostility /= 2
	}
	return compound, min(hostility, 1)
}

var secondPerson = map[string]bool{
	"you": true, "your": true, "you're": true, "youre": true, "yours": true, "yourself": true,
	"u": true, "ur": true, "ya": true,
}

var laughWords = map[string]bool{"lol": true, "lmao": true, "rofl": true, "haha": true, "hahaha": true, "jk": true, "hehe": true}

func laughs(text string, words []string) bool {
	for _, w := range words {
		if laughWords[w] {
			return true
		}
	}
	return strings.ContainsAny(text, "😂🤣😆😜😝")
}
