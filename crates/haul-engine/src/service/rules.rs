//! Rules (categories): an account's conditions on new downloads and the directory and priority they give.
//!
//! A rule is checked whole when it is made (its conditions by `haul_core::rules`, its directory by the same
//! check as a request's `directory`, its priority by the same range), so applying one on add cannot produce
//! a download that the add itself would refuse. [`Engine::apply_rules`] runs inside every add, whichever API
//! the add came through: the first of the account's rules, by position, that the download matches gives it its
//! directory when the request named none, and its priority when the request's is 0.

use haul_core::job::AccountId;
use haul_core::rules::RuleConditions;
use haul_store::{NewDownload, NewRule, RulePatch, RuleRecord};
use url::Url;

use super::Engine;
use super::error::ServiceError;
use super::validate::{check_directory, check_priority};

/// Most rules one account may keep: every add reads them all.
pub const MAX_RULES: usize = 1000;
/// The longest rule name, in characters.
const MAX_NAME: usize = 200;

/// A rule as the API shows it. Times are unix milliseconds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleView {
    pub id: String,
    /// 1 is tried first.
    pub position: u32,
    pub name: Option<String>,
    pub host: Option<String>,
    pub url_pattern: Option<String>,
    pub extensions: Vec<String>,
    pub directory: Option<String>,
    pub priority: Option<i32>,
    pub created_at: i64,
}

/// What `POST /v1/rules` asks for: at least one condition and at least one effect.
#[derive(Clone, Debug, Default)]
pub struct RuleRequest {
    /// Where it goes among the account's rules (1 is first); after the last when `None`.
    pub position: Option<u32>,
    pub name: Option<String>,
    /// Conditions (every one given must hold): this host or its subdomains, a glob over the whole URL, file
    /// types.
    pub host: Option<String>,
    pub url_pattern: Option<String>,
    pub extensions: Vec<String>,
    /// Effects: a directory under the downloads root, a priority.
    pub directory: Option<String>,
    pub priority: Option<i32>,
}

/// A change to a rule; `None` leaves a field alone.
#[derive(Clone, Debug, Default)]
pub struct RulePatchRequest {
    /// A new name; a blank one removes it.
    pub name: Option<String>,
    /// Move it there (1 is first; past the end is the end).
    pub position: Option<u32>,
}

impl Engine {
    /// Adds a rule to `account`, checked whole: conditions, directory, priority, name.
    pub async fn add_rule(&self, account: &AccountId, request: RuleRequest) -> Result<RuleView, ServiceError> {
        let conditions =
            RuleConditions::parse(request.host.as_deref(), request.url_pattern.as_deref(), &request.extensions)
                .map_err(|error| ServiceError::Invalid(error.to_string()))?;
        let directory = request.directory.as_deref().map(check_directory).transpose()?;
        if let Some(priority) = request.priority {
            check_priority(priority)?;
        }
        if directory.is_none() && request.priority.is_none() {
            return Err(ServiceError::Invalid(
                "a rule needs at least one effect: directory or priority (or both)".into(),
            ));
        }
        if request.position == Some(0) {
            return Err(ServiceError::Invalid("position starts at 1 (the rule tried first)".into()));
        }
        let name = request.name.map(check_name).transpose()?.flatten();
        let kept = self.inner.store.list_rules(account).await?.len();
        if kept >= MAX_RULES {
            return Err(ServiceError::Invalid(format!(
                "this account keeps {kept} rules, the most allowed ({MAX_RULES}); remove some (DELETE /v1/rules/ID) \
                 to add more"
            )));
        }
        let new = NewRule {
            account: account.clone(),
            position: request.position,
            name,
            host: conditions.host,
            url_pattern: conditions.url_pattern,
            extensions: conditions.extensions,
            directory,
            priority: request.priority,
        };
        Ok(view_of(self.inner.store.create_rule(&new).await?))
    }

    /// The account's rules in the order they are tried.
    pub async fn rules(&self, account: &AccountId) -> Result<Vec<RuleView>, ServiceError> {
        Ok(self.inner.store.list_rules(account).await?.into_iter().map(view_of).collect())
    }

    pub async fn rule(&self, account: &AccountId, id: &str) -> Result<RuleView, ServiceError> {
        Ok(view_of(self.inner.store.rule(account, id).await?))
    }

    /// Renames or moves a rule of the account.
    pub async fn update_rule(
        &self,
        account: &AccountId,
        id: &str,
        request: RulePatchRequest,
    ) -> Result<RuleView, ServiceError> {
        if request.position == Some(0) {
            return Err(ServiceError::Invalid("position starts at 1 (the rule tried first)".into()));
        }
        let patch = RulePatch { name: request.name.map(check_name).transpose()?, position: request.position };
        Ok(view_of(self.inner.store.update_rule(account, id, &patch).await?))
    }

    /// Removes a rule of the account; downloads it already placed stay where they are.
    pub async fn remove_rule(&self, account: &AccountId, id: &str) -> Result<RuleView, ServiceError> {
        Ok(view_of(self.inner.store.delete_rule(account, id).await?))
    }

    /// Gives a new download what the first of the account's rules it matches gives: the rule's directory when
    /// the request named none, its priority when the request's is 0. A download that asked for both reads no
    /// rule at all.
    pub(super) async fn apply_rules(&self, new: &mut NewDownload) -> Result<(), ServiceError> {
        if new.directory.is_some() && new.priority != 0 {
            return Ok(());
        }
        let rules = self.inner.store.list_rules(&new.account).await?;
        if rules.is_empty() {
            return Ok(());
        }
        // The URL was checked and normalised by the add; one that does not parse again matches no rule.
        let Ok(url) = Url::parse(&new.url) else { return Ok(()) };
        let Some(rule) = rules.into_iter().find(|rule| conditions_of(rule).matches(&url, new.filename.as_deref()))
        else {
            return Ok(());
        };
        if new.directory.is_none()
            && let Some(directory) = &rule.directory
        {
            // Checked when the rule was made; checked again so that no stored value bypasses the add's rule.
            new.directory = Some(check_directory(directory)?);
        }
        if new.priority == 0
            && let Some(priority) = rule.priority
        {
            check_priority(priority)?;
            new.priority = priority;
        }
        Ok(())
    }
}

/// A rule name as kept: trimmed, `None` when blank.
fn check_name(name: String) -> Result<Option<String>, ServiceError> {
    let name = name.trim();
    if name.chars().count() > MAX_NAME || name.chars().any(char::is_control) {
        return Err(ServiceError::Invalid(format!(
            "a rule's name must be at most {MAX_NAME} characters without control characters"
        )));
    }
    Ok(Some(name.to_owned()).filter(|name| !name.is_empty()))
}

fn conditions_of(rule: &RuleRecord) -> RuleConditions {
    RuleConditions {
        host: rule.host.clone(),
        url_pattern: rule.url_pattern.clone(),
        extensions: rule.extensions.clone(),
    }
}

fn view_of(record: RuleRecord) -> RuleView {
    RuleView {
        id: record.id,
        position: record.position,
        name: record.name,
        host: record.host,
        url_pattern: record.url_pattern,
        extensions: record.extensions,
        directory: record.directory,
        priority: record.priority,
        created_at: record.created_at,
    }
}
