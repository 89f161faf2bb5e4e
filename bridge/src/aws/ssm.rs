//! Secrets from SSM Parameter Store. A function of the template is given the *names* of
//! SecureString parameters in `INBOX_SECRET_PARAMETERS`, never the secrets: they are read
//! once, when the process starts (a Lambda cold start), before the configuration is built,
//! and count as if the environment had them. Without that variable nothing is asked of AWS
//! and the environment is used as it is (locally, in the tests, on Spin).
//!
//! A parameter that is missing, or that the function may not read or decrypt, stops the
//! start, naming the parameter and the variable it was for; no value is ever logged.

use std::collections::BTreeSet;

use anyhow::{Context, Result, anyhow, bail};
use aws_sdk_ssm::Client;
use aws_sdk_ssm::error::DisplayErrorContext;
use aws_sdk_ssm::types::{Parameter, ParameterType};
use inbox_core::config::ENV_PREFIX;

/// The variable naming the parameters: `INBOX_STRIPE_SECRET=/inbox/stripe-secret,...`, each
/// entry a variable and the parameter holding its value. An entry whose parameter is empty
/// is left out: the template passes an unused secret's parameter as empty.
pub const VARIABLE: &str = "INBOX_SECRET_PARAMETERS";

/// The most names one GetParameters call takes.
const NAMES_PER_CALL: usize = 10;

/// A variable whose value is read from a parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub variable: String,
    pub parameter: String,
}

/// The entries of `spec`, the value of [`VARIABLE`] (entries separated by commas, with or
/// without spaces around them).
pub fn parse(spec: &str) -> Result<Vec<Wanted>> {
    let mut wanted = Vec::new();
    let mut seen = BTreeSet::new();
    for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let Some((variable, parameter)) = entry.split_once('=') else {
            bail!("{VARIABLE}: {entry:?} is not VARIABLE=/parameter/name");
        };
        let (variable, parameter) = (variable.trim(), parameter.trim());
        let setting = variable.strip_prefix(ENV_PREFIX).unwrap_or_default();
        let named = !setting.is_empty()
            && setting
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
        if !named || variable == VARIABLE {
            bail!("{VARIABLE}: {variable:?} is not an {ENV_PREFIX}* setting");
        }
        if !seen.insert(variable) {
            bail!("{VARIABLE} names {variable} twice");
        }
        if !parameter.is_empty() {
            wanted.push(Wanted {
                variable: variable.to_owned(),
                parameter: parameter.to_owned(),
            });
        }
    }
    Ok(wanted)
}

/// The variables `vars` (the process's environment) names in [`VARIABLE`], each with the
/// value read from its parameter; none, without asking AWS, when it names none.
pub async fn secrets(vars: &[(String, String)]) -> Result<Vec<(String, String)>> {
    let spec = vars
        .iter()
        .find(|(name, _)| name == VARIABLE)
        .map(|(_, spec)| spec.as_str())
        .unwrap_or_default();
    let wanted = parse(spec)?;
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    refuse_set_twice(&wanted, vars)?;
    // What a cold start pays for its secrets, in the log: one call per ten.
    let started = std::time::Instant::now();
    let client = Client::new(&aws_config::load_from_env().await);
    let values = read(&client, &wanted).await?;
    tracing::info!(
        secrets = %describe(&wanted),
        calls = wanted.len().div_ceil(NAMES_PER_CALL),
        took_ms = started.elapsed().as_millis() as u64,
        "read the secrets from SSM Parameter Store"
    );
    Ok(values)
}

/// A variable both set and named in [`VARIABLE`] is refused: which of the two would count
/// is a guess the operator should not have to make.
pub fn refuse_set_twice(wanted: &[Wanted], vars: &[(String, String)]) -> Result<()> {
    for w in wanted {
        if vars
            .iter()
            .any(|(name, value)| name == &w.variable && !value.is_empty())
        {
            bail!(
                "{} is set in the environment and also read from the SSM parameter {} ({VARIABLE}): set one of them",
                w.variable,
                w.parameter
            );
        }
    }
    Ok(())
}

/// The values of `wanted`, read decrypted, ten parameters a call, in the order given.
pub async fn read(client: &Client, wanted: &[Wanted]) -> Result<Vec<(String, String)>> {
    let mut values = Vec::with_capacity(wanted.len());
    for chunk in wanted.chunks(NAMES_PER_CALL) {
        let names: Vec<String> = chunk.iter().map(|w| w.parameter.clone()).collect();
        let output = client
            .get_parameters()
            .set_names(Some(names))
            .with_decryption(true)
            .send()
            .await
            .map_err(|error| anyhow!("{}", DisplayErrorContext(error)))
            .with_context(|| {
                format!(
                    "cannot read the SSM parameters {} (may this role read and decrypt them? is each name valid?)",
                    describe(chunk)
                )
            })?;
        let invalid = output.invalid_parameters();
        if !invalid.is_empty() {
            let named: Vec<String> = invalid
                .iter()
                .map(|name| match chunk.iter().find(|w| &w.parameter == name) {
                    Some(w) => format!("{name} (for {})", w.variable),
                    None => name.clone(),
                })
                .collect();
            bail!(
                "SSM Parameter Store has no parameter {}; create it (a SecureString) or correct the name",
                named.join(", ")
            );
        }
        for w in chunk {
            let parameter = output
                .parameters()
                .iter()
                .find(|p| answers(p, &w.parameter))
                .with_context(|| {
                    format!(
                        "SSM Parameter Store did not return {} (for {})",
                        w.parameter, w.variable
                    )
                })?;
            if parameter.r#type != Some(ParameterType::SecureString) {
                tracing::warn!(
                    parameter = %w.parameter,
                    variable = %w.variable,
                    "not a SecureString: stored unencrypted, readable by whoever may read the parameter; store secrets as SecureString"
                );
            }
            let value = parameter
                .value
                .clone()
                .with_context(|| format!("the SSM parameter {} has no value", w.parameter))?;
            values.push((w.variable.clone(), value));
        }
    }
    Ok(values)
}

/// Whether `parameter` is the answer to the name asked for: its name, its name with the
/// selector asked for (`name:3`, `name:label`), or its ARN.
fn answers(parameter: &Parameter, asked: &str) -> bool {
    let name = parameter.name.as_deref().unwrap_or_default();
    let selector = parameter.selector.as_deref().unwrap_or_default();
    asked == name || asked == format!("{name}{selector}") || parameter.arn.as_deref() == Some(asked)
}

/// `/x (for INBOX_X), /y (for INBOX_Y)`: names only.
fn describe(wanted: &[Wanted]) -> String {
    wanted
        .iter()
        .map(|w| format!("{} (for {})", w.parameter, w.variable))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wanted(variable: &str, parameter: &str) -> Wanted {
        Wanted {
            variable: variable.into(),
            parameter: parameter.into(),
        }
    }

    #[test]
    fn the_variable_names_a_parameter_for_each_setting_and_skips_empty_ones() {
        let spec = "INBOX_BIGCOMMERCE_SECRET=/inbox/bc, INBOX_STRIPE_SECRET=,\n INBOX_ADMIN_TOKEN = /inbox/admin ,";
        assert_eq!(
            parse(spec).unwrap(),
            [
                wanted("INBOX_BIGCOMMERCE_SECRET", "/inbox/bc"),
                wanted("INBOX_ADMIN_TOKEN", "/inbox/admin"),
            ]
        );
        assert!(parse("").unwrap().is_empty());
        assert!(parse("INBOX_FORWARD_URL=").unwrap().is_empty());
    }

    #[test]
    fn a_malformed_entry_is_refused_by_name() {
        for (spec, says) in [
            ("INBOX_ADMIN_TOKEN", "is not VARIABLE=/parameter/name"),
            ("HOME=/inbox/home", "\"HOME\" is not an INBOX_* setting"),
            ("INBOX_=/x", "is not an INBOX_* setting"),
            ("inbox_admin_token=/x", "is not an INBOX_* setting"),
            ("INBOX_SECRET_PARAMETERS=/x", "is not an INBOX_* setting"),
            (
                "INBOX_ADMIN_TOKEN=/a,INBOX_ADMIN_TOKEN=/b",
                "names INBOX_ADMIN_TOKEN twice",
            ),
        ] {
            let error = parse(spec).unwrap_err().to_string();
            assert!(error.contains(says), "{spec}: {error}");
        }
    }

    #[test]
    fn a_setting_both_set_and_read_from_a_parameter_is_refused() {
        let wanted = [wanted("INBOX_ADMIN_TOKEN", "/inbox/admin")];
        let set = [("INBOX_ADMIN_TOKEN".to_owned(), "t0k3n".to_owned())];
        let error = refuse_set_twice(&wanted, &set).unwrap_err().to_string();
        assert!(error.contains("INBOX_ADMIN_TOKEN"), "{error}");
        assert!(error.contains("/inbox/admin"), "{error}");
        assert!(!error.contains("t0k3n"), "{error}");
        // Empty counts as unset, as everywhere else.
        let empty = [("INBOX_ADMIN_TOKEN".to_owned(), String::new())];
        assert!(refuse_set_twice(&wanted, &empty).is_ok());
    }

    #[test]
    fn a_parameter_answers_to_its_name_its_selector_or_its_arn() {
        let parameter = Parameter::builder()
            .name("/inbox/bc")
            .selector(":3")
            .arn("arn:aws:ssm:us-east-1:123456789012:parameter/inbox/bc")
            .build();
        assert!(answers(&parameter, "/inbox/bc"));
        assert!(answers(&parameter, "/inbox/bc:3"));
        assert!(answers(
            &parameter,
            "arn:aws:ssm:us-east-1:123456789012:parameter/inbox/bc"
        ));
        assert!(!answers(&parameter, "/inbox/b"));
        assert!(!answers(&parameter, "/inbox/bc:4"));
    }
}
