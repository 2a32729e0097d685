// Writes cases.json: what Go's regexp package (the one Telepresence compiles
// its filters with) says of a set of patterns: whether each compiles, and
// which of a set of values it finds a match in. api/tests/go_regexp.rs
// checks the telepresence-api crate against it.
//
//	cd api/tests/go-regexp && go run main.go > cases.json
//
// The patterns are the ones written below, where Go's syntax and the regex
// crate's differ, and a few thousand drawn at random (fixed seed): strings
// of pieces of both syntaxes, and strings of single characters that mean
// something to either.
package main

import (
	"encoding/json"
	"fmt"
	"math/rand"
	"regexp"
	"runtime"
	"strings"
)

var written = []string{
	// Perl classes and word boundaries: ASCII in Go.
	`\w`, `\W`, `\d`, `\D`, `\s`, `\S`, `^\w+$`, `^\d+$`, `^\s$`, `\bcafé\b`, `\Bé`, `é\b`, `\b`, `\B`,
	`[\w]`, `[^\w]`, `[\W]`, `[\d\s]`, `[^\D]`, `[\w-]+`, `[é\w]`, `(?i)\w`, `(?i)[\W]`,
	// Literal in Go, syntax in the regex crate.
	`\<a`, `a\>`, `\<`, `a{,3}`, `a{01}`, `a{x}`, `{`, `a{`, `{}`, `a{1,x}`, `}`, `a}`,
	`[[a]`, `[a[]`, `[a&&b]`, `[&&]`, `[a--b]`, `[--]`, `[~~]`, `[a~~b]`, `[-a]`, `[a-]`, `[+--]`,
	`[]a]`, `[^]a]`, `[]`, `[^]`, `[[:alpha:]]`, `[[:^alpha:]]`, `[[:word:]]`, `[[:foo:]]`, `[[:alpha:]`,
	`[[:a]b:]]`, `[[:]`,
	// Go only.
	`\Q.*\E`, `\Qa.b`, `\Q\E`, `a\Q\E*`, `\101`, `\0`, `\08`, `\1`, `\12`, `\8`, `\x41`, `\x{e9}`, `\x{}`,
	`\x{110000}`, `\x4`, `\xZZ`, `\p{^Greek}`, `\P{^Greek}`, `[\p{^L}]`, `(?)a`, `(?)`, `(?P<1a>x)`,
	`(?<name>x)`, `(?P<n>x)(?P<n>y)`, `(?P<a.b>x)`, `(?P<>x)`, `(?P<`, `(?P<n`, `(?<`, `(?<=a)b`, `(?=a)`,
	`\x{D800}`, `[\x{D000}-\x{E000}]`, `[\x{D800}]`, `[^\x{D800}]`,
	// Flags: a flag group lasts to the end of its group, across `|`, and a
	// repetition after one applies to the item before it.
	`x(?i)|alice`, `(x(?i)|alice)`, `(?i)x|alice`, `(?i:x)|alice`, `a(?i)*`, `a*(?i)*`, `(?i)(?s)*`,
	`a(?i)(?s){2}`, `\Q\E*`, `a\Q\E*`, `a*\Q\E*`, `(?U)a+?`, `(?i)ALICE(?-i)x|(?i)alice`, `a*(?i)?`,
	`b{3,400}(?i)?`, `xb{3,400}(?i)?`, `b{2}(?s){3}`, `x{0}(?i){1000}`, `((x{0}(?i){1000}){1,}){2}`,
	`a(?i)\Q\E*`, `a(?i){1}(?i){0}`, `(a(?i)*)*`,
	// Go refuses.
	`a**`, `a*+`, `a+*`, `a??`, `a*??`, `a{2}*`, `a*{2}`, `x{2}{3}`, `a{1001}`, `a{1000}`, `a{2,1}`,
	`(a{100}){10}`, `(a{100}){11}`, `((a{10}){10}){10}`, `((a{10}){10}){11}`, `(a{2}|b{500}){2}`,
	`(a{2}|b{501}){2}`, `(a*){1000}`, `(a{1000}){1}`, `((a{1000}){1}){2}`, `(a{1000}){0}`, `(a{0}){1000}`,
	`(a{1001}){0}`, `((a{1000}){0}){2}`, `((a{1000}){0,}){2}`, `((a{500}){1,}){2}`, `((a{501}){1,}){2}`, `a{0,1000}`, `a{1000,}`, `a{100000000}`,
	`(?x)a`, `(?u)a`, `(?R)a`, `(?i-)a`, `(?-)a`, `(?i-m-s)a`, `(?i-m)a`, `(?-s:.)`, `(?U)a+`, `(?imsU)a`,
	`\u0041`, `\U00000041`, `\e`, `\C`, `\K`, `\Z`, `\y`, `\é`, `\`, `a\`, `[\b]`, `[\A]`, `[\Q]`, `[\z]`,
	`*a`, `+`, `a|*`, `(*)`, `(?i)*`, `a(?i)*`, `^*`, `$+`, `\b*`, `(?:)*`, `()*`, `(|a)+`,
	`(`, `)`, `a)`, `(a`, `((a)`, `[a`, `[a-`, `[z-a]`, `[a-\d]`, `\p`, `\p{`, `\p{Greek`, `\pZ`, `\pé`,
	`\p{Greek}`, `\PL`, `\p{Any}`, `\p{L}`, `(?i)\p{Lu}`, `(?i)[\p{Lu}]`, `\p{Lu}`, `\p{Han}+`,
	// Both, for the record.
	`^a`, `a$`, `^$`, `.`, `(?s).`, `(?m)^b`, `(?m)a$`, `a|b`, `(a|b)+c`, `[a-c]+`, `[^a-c]`, `(?i)alice`,
	`(?i)k`, `(?i)ß`, `(?i)ſ`, `(?i)[k]`, `(?i)[^k]`, `a.c`, `v1\.0`, `^/api/v[0-9]+/`, `\.`, `\*`, `\-`,
	`\&`, `\~`, `\#`, `\ `, `#`, `a b`, `\A\z`, `\Aa`, `a\z`, `(?:a|b)*?c`, `a{2}`, `a{2,}`, `a{2,3}`,
	`a{0}`, `a{0,0}`, `[[:space:]]`, `[[:print:]]`, `[^[:ascii:]]`, `\t`, `\n`, `\f`, `\v`, `\a`, `\r`,
	`[\t\n]`, `[\x00-\x1f]`, `[\x{80}-\x{10FFFF}]`, `(?i)é`, `(?i)É`, `É`, `😀`, `[😀-😂]`,
}

// Pieces for the random patterns: atoms, classes, escapes, operators,
// groups and flags from both syntaxes, valid or not in either.
var pieces = []string{
	"a", "A", "b", "é", "É", "1", "_", " ", "<", ">", "{", "}", "&", "-", "~", ",", "k", "ß",
	`\w`, `\W`, `\d`, `\D`, `\s`, `\S`, `\b`, `\B`, `\<`, `\>`, ".", "^", "$", `\A`, `\z`,
	`\pL`, `\p{Greek}`, `\PL`, `\p{^L}`, `\p{Lu}`, `[a-z]`, `[^a]`, `[\w-]`, `[\W]`, `[[:alpha:]]`,
	`[[:^digit:]]`, `[a&&b]`, `[a--b]`, `[~~]`, `[[a]`, `[]a]`, `[^]a]`, `[é-ë]`, `[\d\D]`, `[^\s]`,
	`\x41`, `\x{e9}`, `\101`, `\0`, `\Q.*\E`, `\Q`, `\E`, `\C`, `\u0041`, `\e`, `\.`, `\\`,
	"*", "+", "?", "*?", "+?", "{2}", "{1,3}", "{,3}", "{01}", "{1001}", "{2,}", "{0}", "{10}", "{100}",
	"|", "(", ")", "(?i)", "(?i:", "(?s)", "(?m)", "(?U)", "(?x)", "(?)", "(?-i)", "(?P<n>", "(?<m>",
	"(?P<1>", "(?:", "(?i-s:",
}

// Counted repeats, nested, and repetitions after flags: a random pattern
// that nests up to four groups.
func nested(random *rand.Rand, depth int) string {
	atoms := []string{"a", "b", ".", "[ab]", "(?i)"}
	repeats := []string{"", "", "*", "?", "+", "{0}", "{1}", "{2}", "{10}", "{100}", "{1000}", "{0,}",
		"{2,}", "{0,2}", "{3,400}", "(?i)*", "(?i){2}", "{2}(?s){3}", "*(?i)?"}
	var b strings.Builder
	for n := 1 + random.Intn(3); n > 0; n-- {
		if depth < 4 && random.Intn(2) == 0 {
			b.WriteString("(" + nested(random, depth+1))
			if random.Intn(4) == 0 {
				b.WriteString("|" + nested(random, depth+1))
			}
			b.WriteString(")")
		} else {
			b.WriteString(atoms[random.Intn(len(atoms))])
		}
		b.WriteString(repeats[random.Intn(len(repeats))])
	}
	return b.String()
}

var characters = []rune(`abAé\[]^-:&~{}(),?*+|.$dDwWsSbBpPQEzx019<>_ LPi=`)

var values = []string{
	"", "a", "A", "b", "ab", "abc", "xabcx", "aa", "aaaa", "aaaaaaaaaa", "ab\nc", "a\n", "\nb",
	"é", "É", "ë", "café", "naïve", "é1", "ß", "ẞ", "ſ", "s", "S", "K", "k", "K", "Ω", "ω", "α", "日本",
	"٣", "3", "12345", "1", "_", "a_b", "A1", "a b", " ", "\t", "\n", "\u00a0", "\u2003", "\v", "\f",
	"\r\n", "\x07", "\x00", "\x7f", "<", ">", "<a>", "a<", "{", "}", "{,3}", "a{,3}", "{01}", "a{01}",
	"a{x}", "[", "]", "[a", "&&", "&", "--", "-", "~~", "~", "a&b", "x-y", "\\", "\\E", ".*", "a.b",
	"€", "😀", "😁", "\uFFFD", "/api/v1/orders", "/v1[", "(dev", "dev-alice", "Alice", "ALICE", "alice",
	"v1.0", "xv1x0y", "*", "#", ",", "word word", "e\u0301",
}

type result struct {
	Pattern string  `json:"pattern"`
	Error   *string `json:"error"`
	// One character per value, in order: '1' where the pattern finds a
	// match in a non-empty value (a filter never matches an empty one).
	Matches string `json:"matches,omitempty"`
}

func main() {
	patterns := append([]string{}, written...)
	random := rand.New(rand.NewSource(1))
	for i := 0; i < 2000; i++ {
		var b strings.Builder
		for n := 1 + random.Intn(6); n > 0; n-- {
			b.WriteString(pieces[random.Intn(len(pieces))])
		}
		patterns = append(patterns, b.String())
	}
	for i := 0; i < 1000; i++ {
		patterns = append(patterns, nested(random, 0))
	}
	for i := 0; i < 2000; i++ {
		var b strings.Builder
		for n := 1 + random.Intn(12); n > 0; n-- {
			b.WriteRune(characters[random.Intn(len(characters))])
		}
		patterns = append(patterns, b.String())
	}
	seen := map[string]bool{}
	var results []result
	for _, p := range patterns {
		if seen[p] {
			continue
		}
		seen[p] = true
		r := result{Pattern: p}
		re, err := regexp.Compile(p)
		if err != nil {
			msg := strings.TrimPrefix(err.Error(), "error parsing regexp: ")
			r.Error = &msg
		} else {
			var m strings.Builder
			for _, v := range values {
				if v != "" && re.MatchString(v) {
					m.WriteByte('1')
				} else {
					m.WriteByte('0')
				}
			}
			r.Matches = m.String()
		}
		results = append(results, r)
	}
	// One case per line, for readable diffs.
	fmt.Printf("{\"go\": %s,\n\"values\": %s,\n\"cases\": [\n", encode(runtime.Version()), encode(values))
	for i, r := range results {
		sep := ","
		if i == len(results)-1 {
			sep = ""
		}
		fmt.Printf("%s%s\n", encode(r), sep)
	}
	fmt.Println("]}")
}

func encode(v any) string {
	var b strings.Builder
	e := json.NewEncoder(&b)
	e.SetEscapeHTML(false)
	if err := e.Encode(v); err != nil {
		panic(err)
	}
	return strings.TrimSuffix(b.String(), "\n")
}
