package moderator

import "testing"

// A small labelled set of chat lines from habit pods: banter and venting
// (not hostile) and hostility.
var labelled = []struct {
	text    string
	hostile bool
}{
	{"lol you lazy bum, I'm dying 😂", false},
	{"you're killing me haha", false},
	{"I'm going to kill this workout today", false},
	{"I failed again today, feel terrible", false},
	{"ugh, this craving is the worst", false},
	{"that was a brutal morning, never again lol", false},
	{"you beast, 5am three days in a row!", false},
	{"damn, I slept through my alarm again", false},
	{"you crazy person, running in the rain", false},
	{"I hate mornings so much", false},
	{"no way you did that, you legend", false},
	{"great job everyone!", false},
	{"you are an idiot and I hate this", true},
	{"shut up, nobody cares about your stupid excuses", true},
	{"whatever, you're pathetic", true},
	{"you always lie about your check-ins, you fraud", true},
	{"you're a joke and a loser", true},
	{"nobody wants you here, you ruin everything", true},
	{"you make me sick with your whining", true},
	{"your attitude is disgusting", true},
}

func TestScorerOnLabelledLines(t *testing.T) {
	s := NewScorer()
	var falsePositives, misses, benign, hostile int
	for _, l := range labelled {
		compound, hostility := s.Score(l.text)
		got := hostility >= HostileThreshold
		t.Logf("%5.2f compound %5.2f hostile=%-5v %q", hostility, compound, got, l.text)
		if l.hostile {
			hostile++
			if !got {
				misses++
			}
		} else {
			benign++
			if got {
				falsePositives++
			}
		}
	}
	fpRate := float64(falsePositives) / float64(benign)
	recall := 1 - float64(misses)/float64(hostile)
	t.Logf("false positives %d/%d (%.0f%%), recall %d/%d (%.0f%%)", falsePositives, benign, 100*fpRate, hostile-misses, hostile, 100*recall)
	if fpRate > 0.1 {
		t.Errorf("false-positive rate %.0f%% on banter, want at most 10%%", 100*fpRate)
	}
	if recall < 0.75 {
		t.Errorf("recall %.0f%% on hostility, want at least 75%%", 100*recall)
	}
}
