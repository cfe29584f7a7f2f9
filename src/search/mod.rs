//! The rules of full-text search, the same on every store: how a query is
//! split into terms, what counts as a word, how case is folded, when a text
//! matches, what snippet is shown, and the order and paging of hits. Both
//! stores use these functions as the final word on a match, so they cannot
//! disagree; their indexes and queries only narrow the candidates.
//!
//! The rules:
//! - `q` is plain text. It is split on whitespace into terms; every term must
//!   match. Any characters are allowed and taken literally.
//! - Case is folded with Unicode simple case folding (one character to one
//!   character: `ÜBER` finds `über`, `ΣΟΦΟΣ` finds `σοφος` and `σοφοσ`).
//! - A word is a run of letters, marks and numbers. Han, Hiragana and
//!   Katakana characters, written without spaces between words, are each a
//!   word of their own, so `東京` is found inside `東京都`.
//! - A term that begins with a word character matches text that contains it
//!   starting at the beginning of a word (`kube` finds `Kubernetes`, not
//!   `minikube`); a term that begins with anything else (`-v`, `"quote`,
//!   `%`) matches anywhere it occurs.
//! - A message is searched as its [`message_text`]: its content, then the
//!   function name of each tool call it makes (`weather` finds a call of
//!   `get_weather`).

use std::{borrow::Cow, cmp::Ordering};

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};

use crate::domain::{MessageId, SessionId, Timestamp, ValidationError};

mod words;

pub use words::{fold_char, index_text, is_word_char};
use words::{folded, for_each_word, word_starts_at};

/// The text of a message that search matches and snippets: its content,
/// then the function name of each tool call it makes, each on a line of
/// its own (a content left blank, as a message that only calls tools has
/// it, is left out, so such a message's snippet is the names). Every store
/// indexes, narrows and checks messages by this one text, so a name is
/// found the same way everywhere. Terms never hold whitespace, so no term
/// matches across the line breaks: a match is in the content or in one
/// name.
pub fn message_text<'a, 'n>(
    content: &'a str,
    function_names: impl IntoIterator<Item = &'n str>,
) -> Cow<'a, str> {
    let mut names = function_names.into_iter().peekable();
    if names.peek().is_none() {
        // Nearly every message: the content itself, not copied.
        return Cow::Borrowed(content);
    }
    let mut text = String::new();
    if !content.trim().is_empty() {
        text.push_str(content);
    }
    for name in names {
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str(name);
    }
    Cow::Owned(text)
}

/// Longest accepted query, in characters.
pub const MAX_QUERY_CHARS: usize = 512;
/// Longest snippet, in characters (the `…` marks included).
pub const MAX_SNIPPET_CHARS: usize = 200;

/// A parsed search query: its terms, folded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchTerms {
    terms: Vec<Vec<char>>,
}

impl SearchTerms {
    /// Splits `q` into terms; blank, or over [`MAX_QUERY_CHARS`], is an error.
    pub fn parse(q: &str) -> Result<Self, ValidationError> {
        if q.chars().count() > MAX_QUERY_CHARS {
            return Err(ValidationError::new(
                "q",
                format!("must be at most {MAX_QUERY_CHARS} characters long"),
            ));
        }
        let terms: Vec<Vec<char>> = q.split_whitespace().map(folded).collect();
        if terms.is_empty() {
            return Err(ValidationError::new("q", "must not be blank"));
        }
        Ok(Self { terms })
    }

    /// The terms, folded.
    pub fn terms(&self) -> impl Iterator<Item = String> + '_ {
        self.terms.iter().map(|t| t.iter().collect())
    }

    /// Where `term` first matches in the folded `chars`.
    fn find(chars: &[char], term: &[char]) -> Option<usize> {
        if term.len() > chars.len() {
            return None;
        }
        let anchored = is_word_char(term[0]);
        (0..=chars.len() - term.len()).find(|&i| {
            chars[i] == term[0]
                && chars[i..i + term.len()] == *term
                && (!anchored || word_starts_at(chars, i))
        })
    }

    /// The first match in `text` of the term that matches first, as a
    /// character range; `None` unless every term matches.
    pub fn first_match(&self, text: &str) -> Option<std::ops::Range<usize>> {
        let chars = folded(text);
        let mut first: Option<std::ops::Range<usize>> = None;
        for term in &self.terms {
            let at = Self::find(&chars, term)?;
            if first.as_ref().is_none_or(|f| at < f.start) {
                first = Some(at..at + term.len());
            }
        }
        first
    }

    /// Whether `text` matches every term.
    pub fn matches(&self, text: &str) -> bool {
        self.first_match(text).is_some()
    }

    /// A piece of `text` of at most [`MAX_SNIPPET_CHARS`] characters around
    /// the first match, with `…` where it was cut; the whole text when it is
    /// short enough. `None` when `text` does not match.
    pub fn snippet(&self, text: &str) -> Option<String> {
        let found = self.first_match(text)?;
        Some(snippet_around(text, found))
    }

    /// The words of every term, for an index of words: a text that matches
    /// has a word beginning with each of them.
    pub fn index_words(&self) -> Vec<String> {
        let mut words = Vec::new();
        for term in &self.terms {
            for_each_word(term, |w| words.push(w.iter().collect()));
        }
        words.sort();
        words.dedup();
        words
    }

    /// For each term, a regular expression that every text matching the
    /// term matches: the term's characters, each with all its case
    /// variants, as a substring. Written to mean the same in PCRE (Cosmos
    /// DB's `REGEXMATCH`) and JavaScript, byte-wise or not: alternations, no
    /// classes of non-ASCII characters. Used to narrow candidates on the
    /// server, never as the match itself.
    pub fn patterns(&self) -> Vec<String> {
        self.terms
            .iter()
            .map(|term| term.iter().map(|&c| char_pattern(c)).collect())
            .collect()
    }

    /// One regular expression that a text matching any term matches: the
    /// [`patterns`](Self::patterns) as alternatives.
    pub fn any_pattern(&self) -> String {
        match self.patterns().as_slice() {
            [one] => one.clone(),
            all => format!("(?:{})", all.join("|")),
        }
    }

    /// One regular expression that a text matching every term matches:
    /// the [`patterns`](Self::patterns), each as a lookahead.
    pub fn pattern(&self) -> String {
        match self.patterns().as_slice() {
            [one] => one.clone(),
            all => {
                let mut out = String::from("^");
                for p in all {
                    out.push_str("(?=[\\s\\S]*?");
                    out.push_str(p);
                    out.push(')');
                }
                out
            }
        }
    }
}

/// A pattern matching `c` in any case.
fn char_pattern(c: char) -> String {
    let variants = case_variants(c);
    let one = |v: char| {
        if v.is_ascii() && !v.is_ascii_alphanumeric() {
            format!("\\{v}")
        } else {
            v.to_string()
        }
    };
    match variants.as_slice() {
        [only] => one(*only),
        many => format!(
            "(?:{})",
            many.iter().map(|&v| one(v)).collect::<Vec<_>>().join("|")
        ),
    }
}

/// Every character that folds like `c` (`c` included), in code point order.
pub fn case_variants(c: char) -> Vec<char> {
    use std::{collections::HashMap, sync::OnceLock};
    static CLASSES: OnceLock<HashMap<char, Vec<char>>> = OnceLock::new();
    let classes = CLASSES.get_or_init(|| {
        let mut classes: HashMap<char, Vec<char>> = HashMap::new();
        for o in (0..=0x10FFFF).filter_map(char::from_u32) {
            let f = fold_char(o);
            if f != o {
                classes.entry(f).or_insert_with(|| vec![f]).push(o);
            }
        }
        for class in classes.values_mut() {
            class.sort_unstable();
        }
        classes
    });
    classes
        .get(&fold_char(c))
        .cloned()
        .unwrap_or_else(|| vec![c])
}

fn snippet_around(text: &str, found: std::ops::Range<usize>) -> String {
    let chars: Vec<char> = text.chars().collect();
    let n = chars.len();
    if n <= MAX_SNIPPET_CHARS {
        return text.to_owned();
    }
    // Some context before the match, starting at a word if one is near.
    const BEFORE: usize = 60;
    let mut start = found.start.saturating_sub(BEFORE);
    if start > 0
        && let Some(space) = chars[start..found.start]
            .iter()
            .take(20)
            .position(|c| c.is_whitespace())
    {
        start += space + 1;
    }
    let lead = usize::from(start > 0);
    let mut end = (start + MAX_SNIPPET_CHARS - lead).min(n);
    if end < n {
        end -= 1; // room for the trailing mark
        // End after a word if one ends near, keeping the match whole.
        if let Some(space) = chars[found.end.min(end)..end]
            .iter()
            .rev()
            .take(20)
            .position(|c| c.is_whitespace())
        {
            end -= space + 1;
        }
    }
    let mut out = String::with_capacity(MAX_SNIPPET_CHARS * 4);
    if start > 0 {
        out.push('…');
    }
    out.extend(&chars[start..end]);
    if end < n {
        out.push('…');
    }
    out
}

/// Where a hit sorts: newest first by `at` (a message's `created_at`, or
/// for a session-name hit the session's `updated_at`), then by session id
/// and message id, descending (a name hit, without message id, after the
/// messages of its session at the same instant).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HitKey {
    /// The instant it sorts by.
    pub at: Timestamp,
    /// Its session; empty only in a cursor that stands between instants.
    pub session_id: String,
    /// Its message; empty for a session-name hit.
    pub message_id: String,
}

impl HitKey {
    /// The key of a hit.
    pub fn new(at: Timestamp, session_id: &SessionId, message_id: Option<&MessageId>) -> Self {
        Self {
            at,
            session_id: session_id.as_str().to_owned(),
            message_id: message_id.map_or_else(String::new, |m| m.as_str().to_owned()),
        }
    }

    /// A position just after every hit at or after `at`: the next page
    /// starts with hits strictly older than `at`.
    pub fn before(at: Timestamp) -> Self {
        Self {
            at,
            session_id: String::new(),
            message_id: String::new(),
        }
    }

    /// Whether this key is a position between instants (from
    /// [`before`](Self::before)) rather than the key of a hit.
    pub fn is_instant(&self) -> bool {
        self.session_id.is_empty()
    }

    /// The opaque continuation token of this position.
    pub fn to_token(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!(
            "s1\n{}\n{}\n{}",
            self.at, self.session_id, self.message_id
        ))
    }

    /// Reads a token made by [`to_token`](Self::to_token).
    pub fn from_token(token: &str) -> Result<Self, ValidationError> {
        let invalid =
            || ValidationError::new("continuation_token", "is not a token this service returned");
        let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
        let text = String::from_utf8(bytes).map_err(|_| invalid())?;
        let mut parts = text.split('\n');
        let (Some("s1"), Some(at), Some(session), Some(message), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(invalid());
        };
        let at = Timestamp::parse(at).map_err(|_| invalid())?;
        if !session.is_empty() && SessionId::parse(session).is_err()
            || !message.is_empty() && (session.is_empty() || MessageId::parse(message).is_err())
        {
            return Err(invalid());
        }
        Ok(Self {
            at,
            session_id: session.to_owned(),
            message_id: message.to_owned(),
        })
    }
}

impl Ord for HitKey {
    /// Newest first: a key that comes first in the results is smaller.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, &other.session_id, &other.message_id).cmp(&(
            self.at,
            &self.session_id,
            &self.message_id,
        ))
    }
}

impl PartialOrd for HitKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terms(q: &str) -> SearchTerms {
        SearchTerms::parse(q).unwrap()
    }

    #[test]
    fn blank_and_overlong_queries_are_refused() {
        assert_eq!(SearchTerms::parse("").unwrap_err().field, "q");
        assert_eq!(SearchTerms::parse(" \t\n").unwrap_err().field, "q");
        assert!(SearchTerms::parse(&"a".repeat(512)).is_ok());
        assert!(SearchTerms::parse(&"a".repeat(513)).is_err());
        assert!(SearchTerms::parse(&"é".repeat(512)).is_ok());
    }

    #[test]
    fn terms_match_at_the_beginning_of_words_in_any_case() {
        assert!(terms("kube").matches("We run Kubernetes."));
        assert!(!terms("kube").matches("We run minikube."));
        assert!(!terms("ernetes").matches("Kubernetes"));
        assert!(terms("ÜBER").matches("Das ist über alles"));
        assert!(terms("über").matches("ÜBERALL"));
        assert!(terms("σοφοσ").matches("ΣΟΦΟΣ"));
        assert!(terms("ΣΟΦΟΣ").matches("σοφος"));
        assert!(terms("µ").matches("μ-law"));
        assert!(terms("straße").matches("STRAẞE"));
        assert!(terms("snake").matches("a snake_case name"));
        assert!(terms("case").matches("a snake_case name"));
        assert!(terms("2024").matches("in 2024."));
    }

    #[test]
    fn every_term_must_match() {
        assert!(terms("tram belém").matches("the tram to Belém leaves"));
        assert!(terms("BELÉM tram").matches("the tram to Belém leaves"));
        assert!(!terms("tram porto").matches("the tram to Belém leaves"));
    }

    #[test]
    fn any_characters_are_literal() {
        assert!(terms("c++").matches("I like C++ a lot"));
        assert!(!terms("c++").matches("I like C a lot"));
        assert!(terms("%").matches("50% off"));
        assert!(!terms("%").matches("half off"));
        assert!(terms("\"quoted\"").matches("say \"quoted\" twice"));
        assert!(!terms("\"quoted\"").matches("say quoted twice"));
        assert!(terms("-v").matches("run ls -v now"));
        assert!(terms("a_b").matches("x a_b y"));
        assert!(terms("OR").matches("this or that"));
        assert!(terms("'; DROP TABLE messages; --").matches("x'; drop table messages; -- y"));
        assert!(terms("\\").matches("a \\ b"));
        assert!(terms("*").matches("a*b"));
        assert!(!terms("*").matches("ab"));
    }

    #[test]
    fn words_of_spaceless_scripts_stand_alone() {
        assert!(terms("京都").matches("東京都に行く"));
        assert!(terms("東京").matches("東京都に行く"));
        assert!(!terms("大阪").matches("東京都に行く"));
        assert_eq!(index_text("東京都に"), "東 京 都 に");
    }

    #[test]
    fn index_words_are_what_matching_texts_hold() {
        assert_eq!(terms("a+b \"Kube\" %").index_words(), ["a", "b", "kube"]);
        // A text that matches holds, for each word, an indexed word that
        // begins with it.
        for (q, text) in [
            ("a+b", "x a+bc"),
            ("-bar", "foo-barn"),
            ("東京", "東京都"),
            ("kube", "Kubernetes"),
        ] {
            let t = terms(q);
            assert!(t.matches(text), "{q} in {text}");
            let indexed = index_text(text);
            for w in t.index_words() {
                assert!(
                    indexed.split(' ').any(|iw| iw.starts_with(&w)),
                    "{w} in {indexed}"
                );
            }
        }
    }

    #[test]
    fn patterns_spell_every_case_variant() {
        let patterns = terms("Kube σ %a 東").patterns();
        assert_eq!(
            patterns,
            [
                "(?:K|k|\u{212A})(?:U|u)(?:B|b)(?:E|e)",
                "(?:Σ|ς|σ)",
                "\\%(?:A|a)",
                "東"
            ]
        );
        assert_eq!(case_variants('s'), ['S', 's', '\u{17F}']);
        assert_eq!(terms("%a").pattern(), "\\%(?:A|a)");
        assert_eq!(
            terms("%a 東").pattern(),
            "^(?=[\\s\\S]*?\\%(?:A|a))(?=[\\s\\S]*?東)"
        );
        assert_eq!(case_variants('1'), ['1']);
    }

    #[test]
    fn a_message_is_searched_by_its_content_and_its_function_names() {
        assert!(matches!(
            message_text("plain", std::iter::empty()),
            Cow::Borrowed("plain")
        ));
        let text = message_text("", ["get_weather", "send-mail"]);
        assert_eq!(text, "get_weather\nsend-mail");
        assert_eq!(message_text(" \n", ["f"]), "f");
        let both = message_text("Let me check Zürich.", ["get_weather"]);
        assert_eq!(both, "Let me check Zürich.\nget_weather");
        // A name is words like any text: `weather` is a word of it.
        assert_eq!(terms("weather").snippet(&text).unwrap(), text);
        assert!(terms("GET_W").matches(&text));
        assert!(terms("mail").matches(&text));
        assert!(!terms("eather").matches(&text));
        // Terms may match in the content and in a name.
        assert!(terms("zürich weather").matches(&both));
        assert!(!terms("zürich mail").matches(&both));
    }

    #[test]
    fn any_pattern_is_the_alternatives_of_the_patterns() {
        assert_eq!(terms("%a").any_pattern(), "\\%(?:A|a)");
        assert_eq!(terms("%a 東").any_pattern(), "(?:\\%(?:A|a)|東)");
    }

    #[test]
    fn snippets_hold_the_first_match_and_stay_short() {
        let t = terms("tram");
        assert_eq!(t.snippet("Take the tram.").unwrap(), "Take the tram.");
        assert_eq!(t.snippet("no match"), None);
        let long = format!(
            "{} the tram to Belém {}",
            "word ".repeat(100),
            "more ".repeat(100)
        );
        let s = t.snippet(&long).unwrap();
        assert!(
            s.chars().count() <= MAX_SNIPPET_CHARS,
            "{}",
            s.chars().count()
        );
        assert!(s.contains("tram"));
        assert!(s.starts_with('…') && s.ends_with('…'));
        let start = format!("tram {}", "x".repeat(300));
        let s = t.snippet(&start).unwrap();
        assert!(s.starts_with("tram") && s.ends_with('…'));
        assert_eq!(s.chars().count(), MAX_SNIPPET_CHARS);
        let end = format!("{} tram", "y ".repeat(300));
        let s = t.snippet(&end).unwrap();
        assert!(s.starts_with('…') && s.ends_with("tram"), "{s}");
        assert!(s.chars().count() <= MAX_SNIPPET_CHARS);
    }

    #[test]
    fn keys_sort_newest_first_with_id_tie_breaks() {
        let t1 = Timestamp::parse("2024-01-01T00:00:00Z").unwrap();
        let t2 = Timestamp::parse("2024-01-02T00:00:00Z").unwrap();
        let s = |id: &str| SessionId::parse(id).unwrap();
        let m = |id: &str| MessageId::parse(id).unwrap();
        let mut keys = [
            HitKey::new(t1, &s("a"), Some(&m("m1"))),
            HitKey::new(t2, &s("a"), None),
            HitKey::new(t1, &s("b"), Some(&m("m1"))),
            HitKey::new(t1, &s("a"), Some(&m("m2"))),
            HitKey::new(t1, &s("a"), None),
        ];
        keys.sort();
        let order: Vec<(String, &str, &str)> = keys
            .iter()
            .map(|k| {
                (
                    k.at.to_string(),
                    k.session_id.as_str(),
                    k.message_id.as_str(),
                )
            })
            .collect();
        assert_eq!(
            order,
            [
                (t2.to_string(), "a", ""),
                (t1.to_string(), "b", "m1"),
                (t1.to_string(), "a", "m2"),
                (t1.to_string(), "a", "m1"),
                (t1.to_string(), "a", ""),
            ]
        );
        assert!(HitKey::before(t1) > keys[4]);
        assert!(HitKey::before(t1) > HitKey::new(t2, &s("a"), None));
    }

    #[test]
    fn tokens_round_trip_and_forgeries_are_refused() {
        let t = Timestamp::parse("2024-01-01T00:00:00Z").unwrap();
        let key = HitKey::new(
            t,
            &SessionId::parse("s1").unwrap(),
            Some(&MessageId::parse("m1").unwrap()),
        );
        assert_eq!(HitKey::from_token(&key.to_token()).unwrap(), key);
        let instant = HitKey::before(t);
        assert_eq!(HitKey::from_token(&instant.to_token()).unwrap(), instant);
        for bad in [
            "",
            "x",
            "czEKeAp5Cno",
            &URL_SAFE_NO_PAD.encode("s1\nnow\n\n"),
        ] {
            assert!(HitKey::from_token(bad).is_err(), "{bad}");
        }
        let odd = URL_SAFE_NO_PAD.encode(format!("s1\n{t}\n\nm1"));
        assert!(HitKey::from_token(&odd).is_err());
    }
}
