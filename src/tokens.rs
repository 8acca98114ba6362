//! Characters to tokens and back through the model's own tokenizer.
//!
//! Real vocabularies do not round-trip all 128 ASCII codes (SmolLM2's drops
//! several control characters). Such codes are remapped to characters that do
//! round-trip; the map is derived from the tokenizer alone, so the encoder and
//! decoder build the same one, and the tokenizer is part of the model
//! fingerprint.

use crate::error::{Error, Result};
use std::collections::HashMap;
use tokenizers::Tokenizer;

/// A model's tokenizer with the map that makes every 7-bit character code
/// round-trip through it.
pub struct TokenCodec {
    tok: Tokenizer,
    /// ASCII code → character put in the text.
    to_text: [char; 128],
    from_text: HashMap<char, u8>,
    /// Tokens in the tokenizer's vocabulary, added tokens included.
    pub vocab_size: usize,
}

impl TokenCodec {
    /// Builds the character map for `tok`; fails when too few characters
    /// round-trip to stand in for the ones that do not.
    pub fn new(tok: Tokenizer) -> Result<Self> {
        let vocab_size = tok.get_vocab_size(true);
        let mut to_text = ['\0'; 128];
        let mut used: Vec<char> = Vec::new();
        let mut bad = Vec::new();
        for c in 0u8..128 {
            let ch = c as char;
            if round_trips(&tok, ch) {
                to_text[c as usize] = ch;
                used.push(ch);
            } else {
                bad.push(c);
            }
        }
        // Replacement candidates in a fixed order: Latin-1 letters first
        // (most tokenizers know them), then onwards.
        let mut cands = (0xC0u32..0x2000).filter_map(char::from_u32);
        for c in bad {
            let rep = cands
                .by_ref()
                .find(|&r| !used.contains(&r) && round_trips(&tok, r))
                .ok_or_else(|| {
                    Error::Tokenizer(format!(
                        "no character round-trips through the tokenizer in place of ASCII code {c}"
                    ))
                })?;
            to_text[c as usize] = rep;
            used.push(rep);
        }
        let from_text = to_text
            .iter()
            .enumerate()
            .map(|(i, &c)| (c, i as u8))
            .collect();
        Ok(TokenCodec {
            tok,
            to_text,
            from_text,
            vocab_size,
        })
    }

    /// ASCII codes that had to be remapped, for `lmic info` and logs.
    pub fn remapped(&self) -> Vec<u8> {
        (0u8..128)
            .filter(|&c| self.to_text[c as usize] != c as char)
            .collect()
    }

    /// The text the tokenizer sees for `chars` (7-bit codes), remapped
    /// characters included.
    pub fn text(&self, chars: &[u8]) -> String {
        chars.iter().map(|&c| self.to_text[c as usize]).collect()
    }

    /// Tokens of a chunk, or None when the tokenizer does not give the text
    /// back exactly (the chunk is then stored verbatim).
    pub fn encode(&self, chars: &[u8]) -> Result<Option<Vec<u32>>> {
        let text = self.text(chars);
        let enc = self
            .tok
            .encode(text.as_str(), false)
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        let ids = enc.get_ids().to_vec();
        let back = self
            .tok
            .decode(&ids, false)
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        Ok((back == text).then_some(ids))
    }

    /// Characters of decoded tokens; an error when they are not a valid chunk.
    pub fn decode(&self, ids: &[u32]) -> Result<Vec<u8>> {
        let text = self
            .tok
            .decode(ids, false)
            .map_err(|e| Error::Corrupt(format!("token decoding failed: {e}")))?;
        text.chars()
            .map(|c| {
                self.from_text.get(&c).copied().ok_or_else(|| {
                    Error::Corrupt(format!("decoded text holds unexpected character {c:?}"))
                })
            })
            .collect()
    }
}

fn round_trips(tok: &Tokenizer, ch: char) -> bool {
    // Check the character alone and between letters, since some tokenizers
    // treat a character differently at the edges of the text.
    [ch.to_string(), format!("a{ch}a"), format!("{ch}{ch}")]
        .iter()
        .all(|s| match tok.encode(s.as_str(), false) {
            Ok(e) => tok.decode(e.get_ids(), false).ok().as_deref() == Some(s.as_str()),
            Err(_) => false,
        })
}

/// A character-level tokenizer: one token per ASCII code (id = code), plus
/// `<s>` (128) and `<unk>` (129). Used by the tiny test model and by models
/// trained for lmic, which need no subword vocabulary.
pub fn char_level_tokenizer() -> Result<Tokenizer> {
    use tokenizers::decoders::fuse::Fuse;
    use tokenizers::models::wordlevel::WordLevel;
    use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
    use tokenizers::SplitDelimiterBehavior;
    let mut vocab = HashMap::new();
    for c in 0u32..128 {
        vocab.insert(char::from_u32(c).unwrap().to_string(), c);
    }
    vocab.insert("<s>".to_string(), 128);
    vocab.insert("<unk>".to_string(), 129);
    let model = WordLevel::builder()
        .vocab(vocab.into_iter().collect())
        .unk_token("<unk>".into())
        .build()
        .map_err(|e| Error::Tokenizer(e.to_string()))?;
    let mut tok = Tokenizer::new(model);
    let split = Split::new(
        SplitPattern::Regex("(?s).".into()),
        SplitDelimiterBehavior::Isolated,
        false,
    )
    .map_err(|e| Error::Tokenizer(e.to_string()))?;
    tok.with_pre_tokenizer(Some(split));
    tok.with_decoder(Some(Fuse::new()));
    Ok(tok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn char_level_round_trips_every_code() {
        let codec = TokenCodec::new(char_level_tokenizer().unwrap()).unwrap();
        assert!(codec.remapped().is_empty());
        let chars: Vec<u8> = (0..128u8).chain((0..128).rev()).collect();
        let ids = codec.encode(&chars).unwrap().unwrap();
        assert_eq!(ids, chars.iter().map(|&c| c as u32).collect::<Vec<_>>());
        assert_eq!(codec.decode(&ids).unwrap(), chars);
    }
}
