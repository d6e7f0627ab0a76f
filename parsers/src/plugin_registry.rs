//! Compiled-in plugins by name: the registry behind built-in mapper plugins and built-in
//! validation plugins. Each kind keeps one `static` registry of its factory type, seeded with
//! the plugins intake ships; a program embedding the engine registers its own.

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};

/// Factories of one kind of plugin, by name.
pub struct PluginRegistry<F: Copy + Send + 'static> {
    plugins: OnceLock<Mutex<BTreeMap<String, F>>>,
    shipped: fn() -> Vec<(&'static str, F)>,
}

impl<F: Copy + Send + 'static> PluginRegistry<F> {
    /// A registry that starts with the plugins `shipped` lists (asked on first use).
    pub const fn new(shipped: fn() -> Vec<(&'static str, F)>) -> Self {
        Self { plugins: OnceLock::new(), shipped }
    }

    fn plugins(&self) -> &Mutex<BTreeMap<String, F>> {
        self.plugins.get_or_init(|| {
            let shipped = (self.shipped)();
            Mutex::new(shipped.into_iter().map(|(name, f)| (name.to_owned(), f)).collect())
        })
    }

    /// Registers `factory` under `name`, replacing one of the same name.
    pub fn register(&self, name: &str, factory: F) {
        if let Ok(mut plugins) = self.plugins().lock() {
            plugins.insert(name.to_owned(), factory);
        }
    }

    /// The factory registered under `name`, or a message naming the ones there are (`kind` is
    /// e.g. "mapper plugin").
    pub fn get(&self, kind: &str, name: &str) -> Result<F, String> {
        let plugins = self.plugins().lock().map_err(|_| "the plugin registry is unusable")?;
        plugins.get(name).copied().ok_or_else(|| {
            let known: Vec<&str> = plugins.keys().map(String::as_str).collect();
            format!("there is no built-in {kind} '{name}'; there are: {}", known.join(", "))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one() -> u8 {
        1
    }

    static NUMBERS: PluginRegistry<fn() -> u8> =
        PluginRegistry::new(|| vec![("one", one as fn() -> u8)]);

    #[test]
    fn shipped_and_registered_plugins_are_found_by_name() {
        assert_eq!(NUMBERS.get("number", "one").map(|f| f()), Ok(1));
        NUMBERS.register("two", || 2);
        assert_eq!(NUMBERS.get("number", "two").map(|f| f()), Ok(2));
        assert_eq!(
            NUMBERS.get("number", "three").map(|f| f()),
            Err("there is no built-in number 'three'; there are: one, two".to_owned())
        );
    }
}
