//! Pure conversation logic: bounded per-chat history, commands, and splitting long answers.

use std::collections::VecDeque;

/// Telegram's limit for one message's text, counted in UTF-16 code units.
pub const TELEGRAM_MESSAGE_LIMIT: usize = 4096;

/// A stored answer longer than this is cut before it goes into history: the history is context,
/// and an unbounded answer would make memory per chat unbounded.
const MAX_STORED_TEXT_CHARS: usize = 8192;

/// One earlier exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Turn {
    pub user_text: String,
    pub assistant_text: String,
}

/// The last `limit` exchanges of one chat.
#[derive(Debug, Clone)]
pub struct ChatHistory {
    limit: usize,
    turns: VecDeque<Turn>,
}

impl ChatHistory {
    pub fn new(limit: usize) -> Self {
        Self { limit, turns: VecDeque::with_capacity(limit.min(8)) }
    }

    pub fn record(&mut self, user_text: &str, assistant_text: &str) {
        if self.limit == 0 {
            return;
        }
        while self.turns.len() >= self.limit {
            self.turns.pop_front();
        }
        self.turns.push_back(Turn {
            user_text: truncate_chars(user_text, MAX_STORED_TEXT_CHARS),
            assistant_text: truncate_chars(assistant_text, MAX_STORED_TEXT_CHARS),
        });
    }

    pub fn clear(&mut self) {
        self.turns.clear();
        self.turns.shrink_to_fit();
    }

    pub fn turns(&self) -> impl ExactSizeIterator<Item = &Turn> {
        self.turns.iter()
    }

    pub fn len(&self) -> usize {
        self.turns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.turns.is_empty()
    }
}

fn truncate_chars(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((byte_index, _)) => text[..byte_index].to_owned(),
        None => text.to_owned(),
    }
}

/// What an incoming text asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Incoming<'text> {
    Start,
    Help,
    Reset,
    /// Another `/command`: answered with the help text rather than sent to the model.
    UnknownCommand,
    /// `/command@OtherBot`: meant for another bot in the same group; ignored.
    ForAnotherBot,
    Chat(&'text str),
}

/// Classifies `text`; `bot_username` lets `/help@OurBot` count and `/help@OtherBot` not.
pub fn classify<'text>(text: &'text str, bot_username: Option<&str>) -> Incoming<'text> {
    let trimmed = text.trim();
    let Some(command_text) = trimmed.strip_prefix('/') else {
        return Incoming::Chat(trimmed);
    };
    let first_word = command_text.split_whitespace().next().unwrap_or("");
    let (command, addressee) = match first_word.split_once('@') {
        Some((command, addressee)) => (command, Some(addressee)),
        None => (first_word, None),
    };
    if let Some(addressee) = addressee {
        let for_us = bot_username.is_some_and(|username| username.eq_ignore_ascii_case(addressee));
        if !for_us {
            return Incoming::ForAnotherBot;
        }
    }
    match command {
        "start" => Incoming::Start,
        "help" => Incoming::Help,
        "reset" => Incoming::Reset,
        _ => Incoming::UnknownCommand,
    }
}

/// Splits `text` into pieces Telegram accepts, preferring to cut at a line break, then at a
/// space, in the second half of a piece.
pub fn split_for_telegram(text: &str) -> Vec<&str> {
    split_at_utf16_limit(text, TELEGRAM_MESSAGE_LIMIT)
}

fn split_at_utf16_limit(text: &str, limit: usize) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        // Byte index where the piece must end at the latest.
        let mut utf16_units = 0;
        let mut hard_end = rest.len();
        for (byte_index, character) in rest.char_indices() {
            utf16_units += character.len_utf16();
            if utf16_units > limit {
                hard_end = byte_index;
                break;
            }
        }
        if hard_end == rest.len() {
            let piece = rest.trim_end();
            if !piece.is_empty() {
                pieces.push(piece);
            }
            break;
        }
        let window = &rest[..hard_end];
        let half = hard_end / 2;
        let cut = window
            .rfind('\n')
            .filter(|&index| index >= half)
            .or_else(|| window.rfind(' ').filter(|&index| index >= half))
            .map(|index| index + 1)
            .unwrap_or(hard_end);
        let (piece, remainder) = rest.split_at(cut);
        let piece = piece.trim_end();
        if !piece.is_empty() {
            pieces.push(piece);
        }
        rest = remainder.trim_start_matches('\n');
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_keeps_only_the_last_turns() {
        let mut history = ChatHistory::new(2);
        for index in 0..5 {
            history.record(&format!("q{index}"), &format!("a{index}"));
        }
        let users: Vec<_> = history.turns().map(|turn| turn.user_text.as_str()).collect();
        assert_eq!(users, ["q3", "q4"]);
        history.clear();
        assert!(history.is_empty());
    }

    #[test]
    fn zero_turns_remembers_nothing() {
        let mut history = ChatHistory::new(0);
        history.record("q", "a");
        assert_eq!(history.len(), 0);
    }

    #[test]
    fn stored_text_is_bounded() {
        let mut history = ChatHistory::new(1);
        history.record(&"é".repeat(20_000), "a");
        assert_eq!(history.turns().next().unwrap().user_text.chars().count(), 8192);
    }

    #[test]
    fn commands_are_recognised() {
        let cases = [
            ("/start", Incoming::Start),
            ("/help", Incoming::Help),
            ("  /reset  ", Incoming::Reset),
            ("/reset@OurBot", Incoming::Reset),
            ("/reset@ourbot now", Incoming::Reset),
            ("/reset@OtherBot", Incoming::ForAnotherBot),
            ("/weather", Incoming::UnknownCommand),
            ("hello /start", Incoming::Chat("hello /start")),
            (" hi ", Incoming::Chat("hi")),
        ];
        for (text, expected) in cases {
            assert_eq!(classify(text, Some("OurBot")), expected, "{text:?}");
        }
    }

    #[test]
    fn short_text_is_one_piece() {
        assert_eq!(split_for_telegram("hello"), ["hello"]);
        assert_eq!(split_for_telegram(&"x".repeat(4096)).len(), 1);
    }

    #[test]
    fn long_text_splits_at_line_breaks_under_the_limit() {
        let paragraph = format!("{}\n", "word ".repeat(500));
        let text = paragraph.repeat(10);
        let pieces = split_for_telegram(&text);
        assert!(pieces.len() > 1);
        for piece in &pieces {
            assert!(piece.encode_utf16().count() <= TELEGRAM_MESSAGE_LIMIT);
            assert!(piece.ends_with("word"), "cut inside a word: {:?}", &piece[piece.len() - 10..]);
        }
        let words: usize = pieces.iter().map(|piece| piece.split_whitespace().count()).sum();
        assert_eq!(words, text.split_whitespace().count());
    }

    #[test]
    fn text_without_spaces_is_cut_hard_at_char_boundaries() {
        // Each emoji is two UTF-16 units: 3000 of them are 6000 units.
        let text = "😀".repeat(3000);
        let pieces = split_for_telegram(&text);
        assert_eq!(pieces.len(), 2);
        assert_eq!(pieces[0].encode_utf16().count(), 4096);
        assert_eq!(pieces.concat(), text);
    }
}
