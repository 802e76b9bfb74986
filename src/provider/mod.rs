//! Talking to OpenAI-compatible providers: the real client code that runs in
//! production, in tests (against `canaryd sim`) and in the demo.

mod client;
mod error;
pub mod retry;
mod settings;
mod types;

use std::collections::BTreeMap;

pub use client::{AttemptHook, Provider};
pub use error::ProviderError;
pub use retry::RetryPolicy;
pub use settings::{ModelRef, ProviderConfig};
pub use types::{
    ChatRequest, ChatResponse, Message, TokenLogprob, TopLogprob, Usage, parse_logprobs,
};

use serde_saphyr::Spanned;

/// Every configured provider, and the model names that resolve to them.
#[derive(Debug, Clone, Default)]
pub struct Providers {
    providers: BTreeMap<String, Provider>,
    models: BTreeMap<String, ModelRef>,
}

impl Providers {
    /// Builds one client per provider, reading API keys now so a missing key
    /// is reported at start, not at the first scheduled run.
    pub fn from_config(
        config_providers: &BTreeMap<String, Spanned<ProviderConfig>>,
        config_models: &BTreeMap<String, Spanned<ModelRef>>,
    ) -> Result<Providers, ProviderError> {
        let mut providers = BTreeMap::new();
        for (name, p) in config_providers {
            let key = p
                .value
                .api_key_ref()
                .resolve()
                .map_err(|e| ProviderError::Setup {
                    provider: name.clone(),
                    message: e.to_string(),
                })?;
            providers.insert(name.clone(), Provider::new(name, &p.value, key)?);
        }
        let models = config_models
            .iter()
            .map(|(k, v)| (k.clone(), v.value.clone()))
            .collect();
        Ok(Providers { providers, models })
    }

    /// The client and model reference behind a model name from the config.
    pub fn resolve(&self, model_name: &str) -> Result<(&Provider, &ModelRef), ProviderError> {
        let model = self
            .models
            .get(model_name)
            .ok_or_else(|| ProviderError::UnknownModel(model_name.to_string()))?;
        let provider = self
            .providers
            .get(&model.provider)
            .ok_or_else(|| ProviderError::Setup {
                provider: model.provider.clone(),
                message: "provider is not configured".into(),
            })?;
        Ok((provider, model))
    }

    /// Applies `f` to every provider (e.g. to install a metrics hook).
    pub fn map(mut self, f: impl Fn(Provider) -> Provider) -> Self {
        self.providers = self.providers.into_iter().map(|(k, p)| (k, f(p))).collect();
        self
    }
}
