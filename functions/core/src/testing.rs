//! Helpers for the workspace's tests (the `testing` feature): a collection file built in code,
//! so a test states only what it is about instead of copying a whole file.

use crate::collection::Collection;
use crate::job::JobSpec;

/// The recipient of test collections: anvil's second dev account.
pub const TEST_RECIPIENT: &str = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";

/// A collection file: name, symbol, the recipient [`TEST_RECIPIENT`], a model folder `m`, the
/// prompts added, and any other sections verbatim.
#[derive(Debug, Clone)]
pub struct CollectionToml {
    name: String,
    symbol: String,
    model: String,
    generation: Vec<String>,
    prompts: Vec<(String, u32)>,
    sections: Vec<String>,
}

impl CollectionToml {
    /// A collection with no prompt yet.
    pub fn new(name: &str, symbol: &str) -> Self {
        Self {
            name: name.into(),
            symbol: symbol.into(),
            model: "m".into(),
            generation: vec![],
            prompts: vec![],
            sections: vec![],
        }
    }

    /// `generation.model`.
    pub fn model(mut self, model: &str) -> Self {
        self.model = model.into();
        self
    }

    /// Lines added to `[generation]` after `model` (`steps = 2`, `width = 32`, ...).
    pub fn generation(mut self, lines: &str) -> Self {
        self.generation.push(lines.into());
        self
    }

    /// One `[[prompts]]` entry of one copy.
    pub fn prompt(self, text: &str) -> Self {
        self.prompt_times(text, 1)
    }

    /// One `[[prompts]]` entry of `count` copies.
    pub fn prompt_times(mut self, text: &str, count: u32) -> Self {
        self.prompts.push((text.into(), count));
        self
    }

    /// TOML added as written after `[generation]` (a `[chain]`, `[review]`, ... section).
    pub fn section(mut self, toml: &str) -> Self {
        self.sections.push(toml.into());
        self
    }

    /// The file's text.
    pub fn text(&self) -> String {
        let quote = |s: &str| toml::Value::String(s.to_string()).to_string();
        let mut t = format!(
            "[collection]\nname = {}\nsymbol = {}\nrecipient = \"{TEST_RECIPIENT}\"\n[generation]\nmodel = {}\n",
            quote(&self.name),
            quote(&self.symbol),
            quote(&self.model)
        );
        for s in self.generation.iter().chain(&self.sections) {
            t.push_str(s.trim_end());
            t.push('\n');
        }
        for (text, count) in &self.prompts {
            t.push_str(&format!("[[prompts]]\ntext = {}\n", quote(text)));
            if *count != 1 {
                t.push_str(&format!("count = {count}\n"));
            }
        }
        t
    }

    /// The file parsed and validated; panics with the refusal (a test's own mistake).
    pub fn collection(&self) -> Collection {
        Collection::from_toml("test.toml", &self.text()).unwrap_or_else(|e| panic!("{e}\n{}", self.text()))
    }

    /// The file's jobs, in file order.
    pub fn jobs(&self) -> Vec<JobSpec> {
        self.collection().jobs().unwrap_or_else(|e| panic!("{e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_file_is_the_file_written_by_hand() {
        let by_hand = "[collection]\nname = \"T\"\nsymbol = \"T\"\nrecipient = \"0x70997970C51812dc3A010C7d01b50e0d17dc79C8\"\n[generation]\nmodel = \"m\"\n[[prompts]]\ntext = \"a red circle\"\n";
        let built = CollectionToml::new("T", "T").prompt("a red circle");
        assert_eq!(built.text(), by_hand);
        let quoted = CollectionToml::new("T", "T").prompt("a \"quoted\" \\ circle").prompt_times("x", 3);
        assert_eq!(quoted.jobs()[0].prompt, "a \"quoted\" \\ circle");
        assert_eq!(quoted.jobs().len(), 4);
        let tuned = CollectionToml::new("T", "T")
            .generation("steps = 3")
            .section("[review]\nauto_approve_at = 0.7")
            .prompt("x");
        let c = tuned.collection();
        assert_eq!((c.file.generation.steps, c.file.review.auto_approve_at), (3, 0.7));
    }
}
