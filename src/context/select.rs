//! Which messages a context read answers: the leading system messages, then
//! the newest messages that fit what is left of the budget, as one unbroken
//! run; an assistant message calling tools and the tool messages answering
//! it are kept or left out together.

use super::tokens::{Encoding, REPLY_PRIMING, TokenCache};
use crate::{
    domain::{ChatMessage, MessageType},
    store::ContextSink,
};

/// A budget the leading system messages alone exceed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetTooSmall {
    /// Tokens the leading system messages need (with the reply priming).
    pub needed: u32,
}

/// The messages chosen so far; fed by a store as a [`ContextSink`].
#[derive(Debug)]
pub struct Selection<'c> {
    encoding: Encoding,
    budget: u32,
    cache: &'c TokenCache,
    leading: Vec<ChatMessage>,
    /// Chosen, newest first.
    picked: Vec<ChatMessage>,
    /// Tool messages whose calling message has not been seen yet, newest first.
    pending: Vec<ChatMessage>,
    pending_tokens: u32,
    used: u32,
    full: bool,
    too_small: Option<BudgetTooSmall>,
}

/// What a context read answers.
#[derive(Debug, Clone, PartialEq)]
pub struct Chosen {
    /// Oldest first.
    pub messages: Vec<ChatMessage>,
    /// Their tokens by the recipe, reply priming included (0 for none).
    pub tokens: u32,
    /// Whether older messages were left out.
    pub truncated: bool,
}

impl<'c> Selection<'c> {
    /// An empty selection for `budget` tokens of `encoding`.
    pub fn new(encoding: Encoding, budget: u32, cache: &'c TokenCache) -> Self {
        Self {
            encoding,
            budget,
            cache,
            leading: Vec::new(),
            picked: Vec::new(),
            pending: Vec::new(),
            pending_tokens: 0,
            used: 0,
            full: false,
            too_small: None,
        }
    }

    /// The messages chosen, once the store has stopped feeding.
    pub fn finish(mut self) -> Result<Chosen, BudgetTooSmall> {
        if let Some(too_small) = self.too_small {
            return Err(too_small);
        }
        if !self.full && !self.pending.is_empty() {
            // Tool messages with no calling message before them: a unit of
            // their own.
            let unit = std::mem::take(&mut self.pending);
            let tokens = std::mem::take(&mut self.pending_tokens);
            self.add(unit, tokens);
        }
        let mut messages = self.leading;
        messages.extend(self.picked.into_iter().rev());
        Ok(Chosen {
            messages,
            tokens: self.used,
            truncated: self.full,
        })
    }

    fn tokens(&self, message: &ChatMessage) -> u32 {
        self.cache.message_tokens(self.encoding, message)
    }

    /// Adds `unit` (newest first) if it fits; else the selection is full.
    fn add(&mut self, unit: Vec<ChatMessage>, tokens: u32) -> bool {
        let priming = if self.used == 0 { REPLY_PRIMING } else { 0 };
        let cost = tokens.saturating_add(priming);
        if self.full || self.used.saturating_add(cost) > self.budget {
            self.full = true;
            return false;
        }
        self.used += cost;
        self.picked.extend(unit);
        true
    }

    fn flush_pending(&mut self) -> bool {
        if self.pending.is_empty() {
            return true;
        }
        let unit = std::mem::take(&mut self.pending);
        let tokens = std::mem::take(&mut self.pending_tokens);
        self.add(unit, tokens)
    }

    fn take(&mut self, message: ChatMessage) -> bool {
        let tokens = self.tokens(&message);
        if message.message_type == MessageType::Tool {
            self.pending.push(message);
            self.pending_tokens = self.pending_tokens.saturating_add(tokens);
            return true;
        }
        let answers_it = message.tool_calls.as_ref().is_some_and(|calls| {
            self.pending.iter().any(|answer| {
                calls
                    .iter()
                    .any(|call| answer.tool_call_id.as_deref() == Some(call.id.as_str()))
            })
        });
        if answers_it {
            let mut unit = std::mem::take(&mut self.pending);
            let tokens = tokens.saturating_add(std::mem::take(&mut self.pending_tokens));
            unit.push(message);
            return self.add(unit, tokens);
        }
        self.flush_pending() && self.add(vec![message], tokens)
    }
}

impl ContextSink for Selection<'_> {
    fn leading(&mut self, system: Vec<ChatMessage>) -> bool {
        if system.is_empty() {
            return true;
        }
        let tokens: u32 = system.iter().map(|m| self.tokens(m)).sum::<u32>() + REPLY_PRIMING;
        if tokens > self.budget {
            self.too_small = Some(BudgetTooSmall { needed: tokens });
            return false;
        }
        self.used = tokens;
        self.leading = system;
        true
    }

    fn older(&mut self, newest_first: Vec<ChatMessage>) -> bool {
        for message in newest_first {
            if !self.take(message) {
                return false;
            }
        }
        true
    }
}
