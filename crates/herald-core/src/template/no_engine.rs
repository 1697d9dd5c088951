//! The stand-in for the template engine in a build without the `templates` feature (a slim
//! build): every template is refused at load with that reason, so no [`Engine`] ever exists.

use super::{AlertVars, ProviderVars, TemplateProblem};
use crate::Event;

/// No template can be compiled in this build: the type has no values.
#[derive(Clone, Debug)]
pub(super) enum Engine {}

impl Engine {
    /// Refuses every template, saying how to get them.
    pub(super) fn compile(_source: &str) -> Result<Engine, TemplateProblem> {
        Err(TemplateProblem::plain(
            "this herald is built without message templates; build it with the cargo feature \
             `templates` (on by default), or remove the annotation",
        ))
    }

    pub(super) fn render(
        &self,
        _event: &Event,
        _alert: AlertVars<'_>,
        _provider: &ProviderVars,
    ) -> Result<String, String> {
        match *self {}
    }
}

/// No template compiles in this build, so there is nothing to render the samples with.
pub(super) fn sample_events() -> [(&'static str, Event); 0] {
    []
}

#[cfg(test)]
mod tests {
    use crate::ProviderType;
    use crate::template::{MessageTemplate, ProviderVars};

    #[test]
    fn every_template_is_refused_with_the_feature_that_enables_it() {
        for ty in [ProviderType::Generic, ProviderType::Slack] {
            let err = MessageTemplate::compile("{{ obj }}", ty, None, ProviderVars::default())
                .unwrap_err();
            assert!(
                err.message.contains("built without message templates")
                    && err.message.contains("cargo feature `templates`"),
                "{}",
                err.message
            );
        }
    }
}
