//! Go's regular expressions, as Telepresence compiles its filters
//! (`regexp.Compile`: RE2 syntax, Perl extensions), run by the `regex` crate.
//!
//! The two syntaxes agree on most patterns. Where they differ, the pattern
//! is rewritten so that the `regex` crate matches what Go matches, and it
//! is refused where Go refuses it, with Go's words:
//!
//! - `\d`, `\s`, `\w`, `\b` and their negations are ASCII in Go (`\w` is
//!   `[0-9A-Za-z_]`), Unicode in the `regex` crate;
//! - Go reads literally what the `regex` crate reads as syntax: `\<` and
//!   `\>`, a `{` that starts no repeat (`{,3}`, `{01}`, `{x}`), and `[`,
//!   `&&`, `--` and `~~` inside a class;
//! - Go has `\Q…\E`, octal escapes (`\101`), `\p{^Greek}`, the empty flag
//!   group `(?)`, and capture names that start with a digit;
//! - Go refuses stacked repetitions (`a**`, `a{2}*`), counts over 1000 (also
//!   as the product of nested counted repeats), flags other than `i`, `m`,
//!   `s` and `U`, and escapes it does not know (`\u0041`, `\e`, `\C`).
//!
//! `api/tests/go_regexp.rs` holds this to what Go's own `regexp` says of
//! a few thousand patterns. What is left: Unicode class names are those
//! Go 1.23 knows, spelled exactly (a later Go may know more), while the
//! classes follow the `regex` crate's Unicode version; Go's estimate of a
//! pattern's compiled size is not made (such a pattern is refused for its
//! counts, or by the crate); and the crate refuses a pattern whose compiled
//! form would pass 10 MiB or that nests more than 250 deep, where Go's
//! limits are higher.

use std::fmt::{self, Write};

use regex::Regex;

/// A regular expression in Go's syntax, ready to match.
#[derive(Clone, Debug)]
pub(crate) struct GoRegex {
    /// As the user wrote it, for messages and explanations.
    source: String,
    regex: Regex,
}

impl GoRegex {
    /// Compiles `pattern` as Go's `regexp.Compile` does; the error says
    /// what Go (or, past Go's checks, the `regex` crate) refused.
    pub(crate) fn new(pattern: &str) -> Result<Self, SyntaxError> {
        let translated = Translator::new(pattern).translate()?;
        let regex = Regex::new(&translated).map_err(|error| {
            // The message quotes the rewritten pattern; its last line is
            // the reason, about the user's pattern as much as ours.
            let text = error.to_string();
            let reason = text.lines().last().unwrap_or_default();
            SyntaxError(reason.trim_start_matches("error: ").to_owned())
        })?;
        Ok(Self {
            source: pattern.to_owned(),
            regex,
        })
    }

    /// The pattern as given.
    pub(crate) fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the pattern matches anywhere in `text` (an unanchored search).
    pub(crate) fn is_match(&self, text: &str) -> bool {
        self.regex.is_match(text)
    }
}

/// Why a pattern is not a regular expression Go accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SyntaxError(String);

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl SyntaxError {
    /// Go's message: what is wrong, then the part of the pattern at fault.
    fn go(code: &str, culprit: &str) -> Self {
        Self(format!("{code}: `{culprit}`"))
    }
}

const MISSING_BRACKET: &str = "missing closing ]";
const MISSING_PAREN: &str = "missing closing )";
const UNEXPECTED_PAREN: &str = "unexpected )";
const INVALID_ESCAPE: &str = "invalid escape sequence";
const INVALID_CHAR_RANGE: &str = "invalid character class range";
const INVALID_NAMED_CAPTURE: &str = "invalid named capture";
const INVALID_PERL_OP: &str = "invalid or unsupported Perl syntax";
const NESTED_REPEAT: &str = "invalid nested repetition operator";
const REPEAT_SIZE: &str = "invalid repeat count";
const MISSING_REPEAT_ARGUMENT: &str = "missing argument to repetition operator";
const TRAILING_BACKSLASH: &str = "trailing backslash at end of expression";

/// The `regex` crate's default nesting limit.
const MAX_DEPTH: usize = 250;

/// Go's largest repeat count, and largest product of nested counted repeats.
const MAX_REPEAT: u32 = 1000;

/// Go's POSIX classes; the `regex` crate knows the same, ASCII too.
const POSIX_CLASSES: &[&str] = &[
    "alnum", "alpha", "ascii", "blank", "cntrl", "digit", "graph", "lower", "print", "punct",
    "space", "upper", "word", "xdigit",
];

/// The class names Go knows after `\p`: `Any`, the Unicode general
/// categories and the scripts (Go 1.23, Unicode 15.0.0), spelled exactly;
/// sorted, for a binary search. The `regex` crate knows them all, and
/// looser spellings too (`\p{greek}`), which Go 1.23 refuses.
#[rustfmt::skip]
const UNICODE_CLASSES: &[&str] = &[
    "Adlam", "Ahom", "Anatolian_Hieroglyphs", "Any", "Arabic", "Armenian", "Avestan",
    "Balinese", "Bamum", "Bassa_Vah", "Batak", "Bengali", "Bhaiksuki", "Bopomofo", "Brahmi",
    "Braille", "Buginese", "Buhid", "C", "Canadian_Aboriginal", "Carian", "Caucasian_Albanian",
    "Cc", "Cf", "Chakma", "Cham", "Cherokee", "Chorasmian", "Co", "Common", "Coptic", "Cs",
    "Cuneiform", "Cypriot", "Cypro_Minoan", "Cyrillic", "Deseret", "Devanagari", "Dives_Akuru",
    "Dogra", "Duployan", "Egyptian_Hieroglyphs", "Elbasan", "Elymaic", "Ethiopic", "Georgian",
    "Glagolitic", "Gothic", "Grantha", "Greek", "Gujarati", "Gunjala_Gondi", "Gurmukhi", "Han",
    "Hangul", "Hanifi_Rohingya", "Hanunoo", "Hatran", "Hebrew", "Hiragana", "Imperial_Aramaic",
    "Inherited", "Inscriptional_Pahlavi", "Inscriptional_Parthian", "Javanese", "Kaithi",
    "Kannada", "Katakana", "Kawi", "Kayah_Li", "Kharoshthi", "Khitan_Small_Script", "Khmer",
    "Khojki", "Khudawadi", "L", "Lao", "Latin", "Lepcha", "Limbu", "Linear_A", "Linear_B",
    "Lisu", "Ll", "Lm", "Lo", "Lt", "Lu", "Lycian", "Lydian", "M", "Mahajani", "Makasar",
    "Malayalam", "Mandaic", "Manichaean", "Marchen", "Masaram_Gondi", "Mc", "Me", "Medefaidrin",
    "Meetei_Mayek", "Mende_Kikakui", "Meroitic_Cursive", "Meroitic_Hieroglyphs", "Miao", "Mn",
    "Modi", "Mongolian", "Mro", "Multani", "Myanmar", "N", "Nabataean", "Nag_Mundari",
    "Nandinagari", "Nd", "New_Tai_Lue", "Newa", "Nko", "Nl", "No", "Nushu",
    "Nyiakeng_Puachue_Hmong", "Ogham", "Ol_Chiki", "Old_Hungarian", "Old_Italic",
    "Old_North_Arabian", "Old_Permic", "Old_Persian", "Old_Sogdian", "Old_South_Arabian",
    "Old_Turkic", "Old_Uyghur", "Oriya", "Osage", "Osmanya", "P", "Pahawh_Hmong", "Palmyrene",
    "Pau_Cin_Hau", "Pc", "Pd", "Pe", "Pf", "Phags_Pa", "Phoenician", "Pi", "Po", "Ps",
    "Psalter_Pahlavi", "Rejang", "Runic", "S", "Samaritan", "Saurashtra", "Sc", "Sharada",
    "Shavian", "Siddham", "SignWriting", "Sinhala", "Sk", "Sm", "So", "Sogdian", "Sora_Sompeng",
    "Soyombo", "Sundanese", "Syloti_Nagri", "Syriac", "Tagalog", "Tagbanwa", "Tai_Le",
    "Tai_Tham", "Tai_Viet", "Takri", "Tamil", "Tangsa", "Tangut", "Telugu", "Thaana", "Thai",
    "Tibetan", "Tifinagh", "Tirhuta", "Toto", "Ugaritic", "Vai", "Vithkuqi", "Wancho",
    "Warang_Citi", "Yezidi", "Yi", "Z", "Zanabazar_Square", "Zl", "Zp", "Zs",
];

/// What a repetition operator would apply to. `out` is where the item
/// starts in the rewritten pattern.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Last {
    /// Nothing: the start, or just after `(` or `|`.
    Nothing,
    /// An item; its weight is the product of the counted repeats in it.
    /// `repeated` when it ends with a repetition that Go lets another
    /// follow (after `(?i)`, say), which then repeats the whole, wrapped in
    /// a group: `wraps` such groups so far.
    Item {
        weight: u32,
        out: usize,
        repeated: bool,
        wraps: usize,
    },
    /// A repetition, which Go does not let another follow; it started at
    /// byte `at` of the pattern.
    Repeat {
        weight: u32,
        at: usize,
        out: usize,
        wraps: usize,
    },
}

struct Translator<'p> {
    pattern: &'p str,
    /// Byte offset of the next character to read.
    at: usize,
    out: String,
    last: Last,
    /// For each group open around `at`, the first being the whole pattern:
    /// the heaviest item in it before `last` (see [`Last::Item`]), and
    /// where it starts in `out`.
    frames: Vec<(u32, usize)>,
    /// Flags from a `(?flags)` group not yet written: Go lets a repetition
    /// that follows one apply to the item before it, which the `regex`
    /// crate refuses; the flags go after the repetitions.
    pending_flags: String,
    /// No `:]` follows: a `[:` in a class is no POSIX class.
    no_named_class_end: bool,
}

impl<'p> Translator<'p> {
    fn new(pattern: &'p str) -> Self {
        Self {
            pattern,
            at: 0,
            out: String::with_capacity(pattern.len() + 16),
            last: Last::Nothing,
            frames: vec![(1, 0)],
            pending_flags: String::new(),
            no_named_class_end: false,
        }
    }

    fn rest(&self) -> &'p str {
        &self.pattern[self.at..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.at += c.len_utf8();
        Some(c)
    }

    /// The pattern from byte `from` to the current position.
    fn since(&self, from: usize) -> &'p str {
        &self.pattern[from..self.at]
    }

    fn translate(mut self) -> Result<String, SyntaxError> {
        while let Some(c) = self.peek() {
            let start = self.at;
            // A group that may hold only flags decides for itself; an empty
            // `\Q\E` is nothing.
            let keeps_flags = matches!(c, '*' | '+' | '?')
                || (c == '{' && counted_repeat(self.rest()).is_some())
                || self.rest().starts_with("(?")
                || self.rest().starts_with("\\Q\\E");
            if !keeps_flags {
                self.flush_flags();
            }
            let out = self.out.len();
            match c {
                '(' => self.open_group()?,
                ')' => self.close_group()?,
                '|' => {
                    self.bump();
                    self.out.push('|');
                    self.settle_last();
                }
                '*' | '+' | '?' => {
                    self.bump();
                    self.repeat(start, 1, false)?;
                }
                '{' => match counted_repeat(self.rest()) {
                    Some((min, max, len)) => {
                        self.at += len;
                        let culprit = self.since(start);
                        if min > MAX_REPEAT || max.is_some_and(|max| max > MAX_REPEAT || max < min)
                        {
                            return Err(SyntaxError::go(REPEAT_SIZE, culprit));
                        }
                        // Go counts `{n,}` as n (at least 1), and does not
                        // look inside `{0}` (0 here).
                        let factor = match max {
                            Some(max) => max,
                            None => min.max(1),
                        };
                        let checked = min >= 2 || max.is_some_and(|max| max >= 2);
                        self.repeat(start, factor, checked)?;
                    }
                    None => {
                        self.bump();
                        self.out.push_str("\\{");
                        self.item(1, out);
                    }
                },
                '[' => {
                    self.class()?;
                    self.item(1, out);
                }
                '\\' => self.escape(out)?,
                '.' | '^' | '$' => {
                    self.bump();
                    self.out.push(c);
                    self.item(1, out);
                }
                _ => {
                    self.bump();
                    push_literal(&mut self.out, c);
                    self.item(1, out);
                }
            }
        }
        if self.frames.len() > 1 {
            return Err(SyntaxError::go(MISSING_PAREN, self.pattern));
        }
        self.flush_flags();
        Ok(self.out)
    }

    /// What Go does after anything that is not a repetition, even something
    /// that adds nothing (`(?i)`, `\Q\E`): a repetition may follow again.
    fn forget_repeat(&mut self) {
        if let Last::Repeat {
            weight, out, wraps, ..
        } = self.last
        {
            self.last = Last::Item {
                weight,
                out,
                repeated: true,
                wraps,
            };
        }
    }

    /// Records an item that a repetition may follow, written from `out` on.
    fn item(&mut self, weight: u32, out: usize) {
        self.settle_last();
        self.last = Last::Item {
            weight,
            out,
            repeated: false,
            wraps: 0,
        };
    }

    /// The last item can no longer take a repetition: its weight counts
    /// for its group.
    fn settle_last(&mut self) {
        let weight = match self.last {
            Last::Nothing => return,
            Last::Item { weight, .. } | Last::Repeat { weight, .. } => weight,
        };
        let (heaviest, _) = self.frames.last_mut().expect("the whole pattern's frame");
        *heaviest = (*heaviest).max(weight);
        self.last = Last::Nothing;
    }

    /// A repetition operator just read (from byte `start`), with the `?`
    /// that may follow to make it lazy. Go multiplies the counts of nested
    /// counted repeats (`factor`; 0 for `{0}`, which it does not look
    /// into) and refuses more than 1000 (`checked`: only for a count of 2
    /// or more).
    fn repeat(&mut self, start: usize, factor: u32, checked: bool) -> Result<(), SyntaxError> {
        if self.peek() == Some('?') {
            self.bump();
        }
        let (inner, out, wraps) = match self.last {
            Last::Nothing => {
                return Err(SyntaxError::go(MISSING_REPEAT_ARGUMENT, self.since(start)));
            }
            Last::Repeat { at, .. } => {
                return Err(SyntaxError::go(NESTED_REPEAT, self.since(at)));
            }
            Last::Item {
                weight,
                out,
                repeated,
                wraps,
            } => {
                if !repeated {
                    (weight, out, wraps)
                } else {
                    // Go repeats the repetition: `a*(?i)?` is `(?:a*)?`,
                    // where `a*?` would be lazy.
                    self.check_depth(wraps + 1)?;
                    self.out.insert_str(out, "(?:");
                    self.out.push(')');
                    (weight, out, wraps + 1)
                }
            }
        };
        let weight = match factor {
            0 => 1,
            factor => inner.saturating_mul(factor),
        };
        if checked && weight > MAX_REPEAT {
            return Err(SyntaxError::go(REPEAT_SIZE, self.since(start)));
        }
        self.out.push_str(self.since(start));
        self.last = Last::Repeat {
            weight,
            at: start,
            out,
            wraps,
        };
        Ok(())
    }

    fn flush_flags(&mut self) {
        if !self.pending_flags.is_empty() {
            self.out.push_str(&self.pending_flags);
            self.pending_flags.clear();
        }
    }

    fn open_group(&mut self) -> Result<(), SyntaxError> {
        let start = self.at;
        self.bump();
        if self.peek() != Some('?') {
            self.push_frame("(")?;
            return Ok(());
        }
        let rest = self.rest();
        // Go's conditions, lengths included: `(?P<` alone is not a name.
        let named = if rest.len() > 3 && rest.starts_with("?P<") {
            Some(&rest[3..])
        } else if rest.len() > 2 && rest.starts_with("?<") {
            Some(&rest[2..])
        } else {
            None
        };
        if let Some(after) = named {
            let Some(end) = after.find('>') else {
                return Err(SyntaxError::go(
                    INVALID_NAMED_CAPTURE,
                    &self.pattern[start..],
                ));
            };
            let name = &after[..end];
            self.at = self.pattern.len() - after.len() + end + 1;
            let capture = self.since(start);
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(SyntaxError::go(INVALID_NAMED_CAPTURE, capture));
            }
            // Names do not change what matches, and Go allows some the
            // `regex` crate does not (`(?P<1st>…)`, the same name twice).
            self.flush_flags();
            self.push_frame("(")?;
            return Ok(());
        }
        self.perl_flags(start)
    }

    /// `(?flags)` or `(?flags:`, with Go's rules: `i`, `m`, `s`, `U`, one
    /// `-` followed by at least one flag.
    fn perl_flags(&mut self, start: usize) -> Result<(), SyntaxError> {
        self.bump(); // the `?`
        let mut flags = String::new();
        let mut negated = false;
        let mut flag_since_sign = false;
        while let Some(c) = self.bump() {
            match c {
                'i' | 'm' | 's' | 'U' => {
                    flags.push(c);
                    flag_since_sign = true;
                }
                '-' if !negated => {
                    flags.push('-');
                    negated = true;
                    flag_since_sign = false;
                }
                ':' | ')' if !negated || flag_since_sign => {
                    if c == ':' {
                        self.flush_flags();
                        let open = format!("(?{flags}:");
                        self.push_frame(&open)?;
                    } else {
                        if !flags.is_empty() {
                            write!(self.pending_flags, "(?{flags})").expect("writing to a String");
                        }
                        self.forget_repeat();
                    }
                    return Ok(());
                }
                _ => break,
            }
        }
        Err(SyntaxError::go(INVALID_PERL_OP, self.since(start)))
    }

    fn push_frame(&mut self, open: &str) -> Result<(), SyntaxError> {
        self.settle_last();
        self.frames.push((1, self.out.len()));
        self.check_depth(0)?;
        self.out.push_str(open);
        Ok(())
    }

    /// The `regex` crate refuses a pattern nested more than 250 deep (Go,
    /// 1000); refusing it here, before the crate does, also bounds the
    /// work of wrapping an item in groups (`extra` more around it).
    fn check_depth(&self, extra: usize) -> Result<(), SyntaxError> {
        if self.frames.len() - 1 + extra > MAX_DEPTH {
            return Err(SyntaxError(format!(
                "groups nest more than {MAX_DEPTH} deep, past the regex crate's limit"
            )));
        }
        Ok(())
    }

    fn close_group(&mut self) -> Result<(), SyntaxError> {
        self.bump();
        if self.frames.len() == 1 {
            return Err(SyntaxError::go(UNEXPECTED_PAREN, self.pattern));
        }
        self.settle_last();
        let (heaviest, out) = self.frames.pop().expect("an open group");
        self.out.push(')');
        self.item(heaviest, out);
        Ok(())
    }

    /// At `\` outside a class; what it stands for is written from `out` on.
    fn escape(&mut self, out: usize) -> Result<(), SyntaxError> {
        let start = self.at;
        self.bump();
        let Some(c) = self.peek() else {
            return Err(SyntaxError::go(TRAILING_BACKSLASH, ""));
        };
        match c {
            'A' | 'z' => {
                self.bump();
                self.out.push('\\');
                self.out.push(c);
            }
            'b' | 'B' => {
                self.bump();
                write!(self.out, "(?-u:\\{c})").expect("writing to a String");
            }
            'C' => {
                self.bump();
                return Err(SyntaxError::go(INVALID_ESCAPE, self.since(start)));
            }
            'Q' => {
                self.bump();
                let rest = self.rest();
                let (literal, after) = match rest.find("\\E") {
                    Some(end) => (&rest[..end], end + 2),
                    None => (rest, rest.len()),
                };
                self.at += after;
                self.forget_repeat();
                for c in literal.chars() {
                    let out = self.out.len();
                    push_literal(&mut self.out, c);
                    self.item(1, out);
                }
                return Ok(());
            }
            'p' | 'P' => {
                let class = self.unicode_class(start)?;
                self.out.push_str(&class);
            }
            'd' | 'D' | 's' | 'S' | 'w' | 'W' => {
                self.bump();
                let (set, negated) = perl_class(c);
                self.out.push_str(if negated { "[^" } else { "[" });
                self.out.push_str(set);
                self.out.push(']');
            }
            _ => {
                let value = self.escaped_char(start)?;
                push_code_point(&mut self.out, value);
            }
        }
        self.item(1, out);
        Ok(())
    }

    /// After `\` (at `start`), a character escape: octal, `\x`, `\a` `\f`
    /// `\n` `\r` `\t` `\v`, or ASCII punctuation standing for itself.
    fn escaped_char(&mut self, start: usize) -> Result<u32, SyntaxError> {
        let invalid = |this: &Self| SyntaxError::go(INVALID_ESCAPE, this.since(start));
        let c = self
            .bump()
            .ok_or_else(|| SyntaxError::go(TRAILING_BACKSLASH, ""))?;
        let octal = |c: Option<char>| c.filter(|c| ('0'..='7').contains(c));
        match c {
            // A lone nonzero digit would be a backreference, which Go refuses.
            '1'..='7' if octal(self.peek()).is_none() => Err(invalid(self)),
            '0'..='7' => {
                let mut value = c.to_digit(8).unwrap_or(0);
                for _ in 0..2 {
                    let Some(digit) = octal(self.peek()) else {
                        break;
                    };
                    self.bump();
                    value = value * 8 + digit.to_digit(8).unwrap_or(0);
                }
                Ok(value)
            }
            'x' => {
                if self.peek() != Some('{') {
                    // Go reads both digits before it looks at them.
                    let (Some(high), Some(low)) = (self.bump(), self.bump()) else {
                        return Err(invalid(self));
                    };
                    let (Some(high), Some(low)) = (high.to_digit(16), low.to_digit(16)) else {
                        return Err(invalid(self));
                    };
                    return Ok(high * 16 + low);
                }
                self.bump();
                let mut value = 0u32;
                let mut digits = 0;
                loop {
                    let Some(c) = self.bump() else {
                        return Err(invalid(self));
                    };
                    if c == '}' {
                        break;
                    }
                    let digit = c.to_digit(16).ok_or_else(|| invalid(self))?;
                    value = value * 16 + digit;
                    digits += 1;
                    if value > 0x10FFFF {
                        return Err(invalid(self));
                    }
                }
                if digits == 0 {
                    return Err(invalid(self));
                }
                Ok(value)
            }
            'a' => Ok(0x07),
            'f' => Ok(0x0C),
            'n' => Ok(0x0A),
            'r' => Ok(0x0D),
            't' => Ok(0x09),
            'v' => Ok(0x0B),
            c if c.is_ascii() && !c.is_ascii_alphanumeric() => Ok(u32::from(c)),
            _ => Err(invalid(self)),
        }
    }

    /// At `\p` or `\P` (the `\` at `start`): the class in the `regex`
    /// crate's syntax, Go's `\p{^Name}` negation resolved.
    fn unicode_class(&mut self, start: usize) -> Result<String, SyntaxError> {
        let mut negated = self.bump() == Some('P');
        let name = match self.bump() {
            Some('{') => {
                let rest = self.rest();
                let Some(end) = rest.find('}') else {
                    return Err(SyntaxError::go(INVALID_CHAR_RANGE, &self.pattern[start..]));
                };
                self.at += end + 1;
                &rest[..end]
            }
            Some(c) => &self.pattern[self.at - c.len_utf8()..self.at],
            None => return Err(SyntaxError::go(INVALID_CHAR_RANGE, self.since(start))),
        };
        let name = match name.strip_prefix('^') {
            Some(name) => {
                negated = !negated;
                name
            }
            None => name,
        };
        if UNICODE_CLASSES.binary_search(&name).is_err() {
            return Err(SyntaxError::go(INVALID_CHAR_RANGE, self.since(start)));
        }
        Ok(format!("\\{}{{{name}}}", if negated { 'P' } else { 'p' }))
    }

    /// At `[`: a class, as Go reads it, written out so that the `regex`
    /// crate reads nothing more into it (its own syntax escaped).
    fn class(&mut self) -> Result<(), SyntaxError> {
        let start = self.at;
        self.bump();
        let missing = |this: &Self| SyntaxError::go(MISSING_BRACKET, &this.pattern[start..]);
        let mut class = String::from("[");
        if self.peek() == Some('^') {
            self.bump();
            class.push('^');
        }
        let mut first = true;
        loop {
            let rest = self.rest();
            match rest.chars().next() {
                None => return Err(missing(self)),
                Some(']') if !first => break,
                _ => {}
            }
            first = false;
            let named_end = match rest.strip_prefix("[:") {
                // Go searches the rest of the pattern for `:]` at every
                // `[:`; once a search finds none, no later one can.
                Some(after) if !self.no_named_class_end => {
                    let end = after.find(":]");
                    self.no_named_class_end = end.is_none();
                    end.map(|end| (after, end))
                }
                _ => None,
            };
            if let Some((after, end)) = named_end {
                let whole = &rest[..end + 4];
                let name = &after[..end];
                let bare = name.strip_prefix('^').unwrap_or(name);
                if !POSIX_CLASSES.contains(&bare) {
                    return Err(SyntaxError::go(INVALID_CHAR_RANGE, whole));
                }
                self.at += whole.len();
                class.push_str(whole);
                continue;
            }
            if rest.starts_with("\\p") || rest.starts_with("\\P") {
                let escape = self.at;
                self.bump();
                let unicode = self.unicode_class(escape)?;
                class.push_str(&unicode);
                continue;
            }
            if let Some(c @ ('d' | 'D' | 's' | 'S' | 'w' | 'W')) =
                rest.strip_prefix('\\').and_then(|r| r.chars().next())
            {
                self.at += 2;
                let (set, negated) = perl_class(c);
                if negated {
                    // A negated set inside a class: a nested class, a union.
                    write!(class, "[^{set}]").expect("writing to a String");
                } else {
                    class.push_str(set);
                }
                continue;
            }
            let item = self.at;
            let low = self.class_char(start)?;
            let rest = self.rest();
            let high = if rest.len() >= 2 && rest.starts_with('-') && !rest[1..].starts_with(']') {
                self.bump();
                let high = self.class_char(start)?;
                if high < low {
                    return Err(SyntaxError::go(INVALID_CHAR_RANGE, self.since(item)));
                }
                Some(high)
            } else {
                None
            };
            push_class_range(&mut class, low, high.unwrap_or(low));
        }
        self.bump(); // the `]`
        class.push(']');
        self.out.push_str(&class);
        Ok(())
    }

    /// One character of a class, escaped or not; the class started at
    /// `class`.
    fn class_char(&mut self, class: usize) -> Result<u32, SyntaxError> {
        match self.peek() {
            None => Err(SyntaxError::go(MISSING_BRACKET, &self.pattern[class..])),
            Some('\\') => {
                let start = self.at;
                self.bump();
                self.escaped_char(start)
            }
            Some(c) => {
                self.bump();
                Ok(u32::from(c))
            }
        }
    }
}

/// Go's Perl classes, ASCII only: the set (for inside a class) and whether
/// it is negated.
fn perl_class(c: char) -> (&'static str, bool) {
    match c {
        'd' => ("0-9", false),
        'D' => ("0-9", true),
        's' => ("\\t\\n\\f\\r ", false),
        'S' => ("\\t\\n\\f\\r ", true),
        'w' => ("0-9A-Za-z_", false),
        _ => ("0-9A-Za-z_", true),
    }
}

/// At `{`: the bounds of a counted repeat as Go reads one (`{n}`, `{n,}`,
/// `{n,m}`, no leading zeros) and its length; `None` when the `{` is a
/// literal.
fn counted_repeat(text: &str) -> Option<(u32, Option<u32>, usize)> {
    let rest = text.strip_prefix('{')?;
    let (min, rest) = repeat_count(rest)?;
    let (max, rest) = match rest.strip_prefix(',') {
        None => (Some(min), rest),
        Some(rest) if rest.starts_with('}') => (None, rest),
        Some(rest) => {
            let (max, rest) = repeat_count(rest)?;
            (Some(max), rest)
        }
    };
    let rest = rest.strip_prefix('}')?;
    Some((min, max, text.len() - rest.len()))
}

/// The digits of a repeat count, as Go reads them: no leading zero.
fn repeat_count(text: &str) -> Option<(u32, &str)> {
    let digits = text.len() - text.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    if digits == 0 || (digits > 1 && text.starts_with('0')) {
        return None;
    }
    // Go caps at 10^8 before deciding the count is too large; so does this.
    let value = text[..digits]
        .parse::<u32>()
        .unwrap_or(u32::MAX)
        .min(100_000_000);
    Some((value, &text[digits..]))
}

/// What never matches: Go accepts a surrogate code point in an escape, which
/// no UTF-8 text holds.
const NOTHING: &str = "[^\\x{0}-\\x{10FFFF}]";

fn push_literal(out: &mut String, c: char) {
    if "\\.+*?()|[]{}^$#&-~".contains(c) {
        out.push('\\');
    }
    out.push(c);
}

/// A code point from an escape, outside a class.
fn push_code_point(out: &mut String, value: u32) {
    match char::from_u32(value) {
        Some(c) => push_literal(out, c),
        None => out.push_str(NOTHING),
    }
}

/// A range inside a class, the surrogates Go's range may span left out.
fn push_class_range(class: &mut String, low: u32, high: u32) {
    const SURROGATES: std::ops::RangeInclusive<u32> = 0xD800..=0xDFFF;
    let low = if SURROGATES.contains(&low) {
        0xE000
    } else {
        low
    };
    let high = if SURROGATES.contains(&high) {
        0xD7FF
    } else {
        high
    };
    let (Some(low), Some(high)) = (char::from_u32(low), char::from_u32(high)) else {
        class.push_str(NOTHING);
        return;
    };
    if low > high {
        class.push_str(NOTHING);
        return;
    }
    push_class_char(class, low);
    if low < high {
        class.push('-');
        push_class_char(class, high);
    }
}

/// A character inside a class, escaped where the `regex` crate would read
/// syntax: `&&`, `--`, `~~`, a nested `[`, and the usual four.
fn push_class_char(class: &mut String, c: char) {
    if "[]\\^-&~".contains(c) {
        class.push('\\');
    }
    class.push(c);
}

#[cfg(test)]
mod tests {
    use super::GoRegex;

    #[test]
    fn groups_nested_past_the_crates_limit_are_refused_with_the_reason() {
        let deep = format!("{}a{}", "(".repeat(251), ")".repeat(251));
        let error = GoRegex::new(&deep).unwrap_err().to_string();
        assert!(error.contains("more than 250 deep"), "{error}");
        let wrapped = format!("a*{}", "(?i)?".repeat(251));
        let error = GoRegex::new(&wrapped).unwrap_err().to_string();
        assert!(error.contains("more than 250 deep"), "{error}");
        let fine = format!("{}a{}", "(".repeat(100), ")".repeat(100));
        assert!(GoRegex::new(&fine).unwrap().is_match("a"));
    }

    /// Go looks for `:]` after every `[:` in a class; a pattern of many
    /// `[:` and no `:]` is read in one pass here.
    #[test]
    fn a_class_of_many_unclosed_posix_openers_is_read() {
        let class = format!("[{}]", "[:a".repeat(200_000));
        let regex = GoRegex::new(&class).unwrap();
        assert!(regex.is_match(":") && regex.is_match("[") && !regex.is_match("b"));
    }
}
