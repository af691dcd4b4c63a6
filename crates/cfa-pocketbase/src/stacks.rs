//! `agent_stacks` records: view, list (paged and all, keyset), create, update, delete.

use reqwest::Method;
use serde_json::Value;

use crate::client::{ListOptions, MAX_PER_PAGE, PocketBaseClient, path_segment};
use crate::error::{PocketBaseError, PocketBaseErrorKind};
use crate::filter::{StackFilter, and, quote};
use crate::types::{
    AgentStack, NewStack, Page, StackPatch, format_pocketbase_date, secret_looking_key,
    stack_create_body, stack_from_record, stack_patch_body,
};

impl PocketBaseClient {
    pub async fn stack_view(
        &self,
        stack_id: &str,
        expand_tenant: bool,
    ) -> Result<AgentStack, PocketBaseError> {
        let path = format!("api/collections/agent_stacks/records/{}", path_segment(stack_id)?);
        let query =
            if expand_tenant { vec![("expand", "tenant_id".to_owned())] } else { Vec::new() };
        let record = self.call_record("stack_view", Method::GET, &path, &query, None).await?;
        stack_from_record("stack_view", &record)
    }

    pub async fn stack_list(
        &self,
        filter: &StackFilter,
        options: &ListOptions,
    ) -> Result<Page<AgentStack>, PocketBaseError> {
        let (items, page) = self
            .list_records("stack_list", "agent_stacks", filter.to_expression(), options)
            .await?;
        let items = items
            .iter()
            .map(|record| stack_from_record("stack_list", record))
            .collect::<Result<_, _>>()?;
        Ok(Page { items, page: page.page, per_page: page.per_page, total_items: page.total_items })
    }

    /// Every stack matching `filter`, ordered by id. Pages by key (`id > last`), not by
    /// offset, so a long list costs the same per page and a concurrent insert cannot shift
    /// an item into the next page twice.
    pub async fn stack_list_all(
        &self,
        filter: &StackFilter,
        expand_tenant: bool,
    ) -> Result<Vec<AgentStack>, PocketBaseError> {
        let mut stacks: Vec<AgentStack> = Vec::new();
        loop {
            let mut terms: Vec<String> = filter
                .to_expression()
                .into_iter()
                .map(|expression| format!("({expression})"))
                .collect();
            if let Some(last) = stacks.last() {
                terms.push(format!("id > {}", quote(&last.id)));
            }
            let options = ListOptions {
                page: 1,
                per_page: MAX_PER_PAGE,
                sort: Some("id".to_owned()),
                expand_tenant,
                skip_total: true,
            };
            let (items, _) =
                self.list_records("stack_list_all", "agent_stacks", and(terms), &options).await?;
            let count = items.len();
            for record in &items {
                stacks.push(stack_from_record("stack_list_all", record)?);
            }
            if count < MAX_PER_PAGE as usize {
                return Ok(stacks);
            }
        }
    }

    /// Creates a stack. Refuses, without sending, a `config` with a secret-looking key.
    pub async fn stack_create(&self, stack: &NewStack) -> Result<AgentStack, PocketBaseError> {
        refuse_secrets("stack_create", &stack.config)?;
        let body = stack_create_body(stack);
        let record = self
            .call_record(
                "stack_create",
                Method::POST,
                "api/collections/agent_stacks/records",
                &[],
                Some(&body),
            )
            .await?;
        stack_from_record("stack_create", &record)
    }

    /// Updates the `Some` fields of a stack. Refuses, without sending, a `config` with a
    /// secret-looking key.
    pub async fn stack_update(
        &self,
        stack_id: &str,
        patch: &StackPatch,
    ) -> Result<AgentStack, PocketBaseError> {
        if let Some(config) = &patch.config {
            refuse_secrets("stack_update", config)?;
        }
        let body = stack_patch_body(patch);
        let path = format!("api/collections/agent_stacks/records/{}", path_segment(stack_id)?);
        let record =
            self.call_record("stack_update", Method::PATCH, &path, &[], Some(&body)).await?;
        stack_from_record("stack_update", &record)
    }

    /// [`Self::stack_update`] only if the record is unchanged since it was read (`read_updated`,
    /// its `updated_at` then), else `PocketBaseErrorKind::Stale` and nothing written: a writer
    /// never overwrites a change it has not seen (pb_hooks/cfa_agent_stacks.pb.js decides in
    /// one transaction). Superusers only.
    pub async fn stack_update_if(
        &self,
        stack_id: &str,
        read_updated: jiff::Timestamp,
        patch: &StackPatch,
    ) -> Result<AgentStack, PocketBaseError> {
        if let Some(config) = &patch.config {
            refuse_secrets("stack_update_if", config)?;
        }
        let mut body = stack_patch_body(patch);
        if let Some(fields) = body.as_object_mut() {
            fields.insert("cfa_if_updated".to_owned(), format_pocketbase_date(read_updated).into());
        }
        let path = format!("api/collections/agent_stacks/records/{}", path_segment(stack_id)?);
        let record =
            self.call_record("stack_update_if", Method::PATCH, &path, &[], Some(&body)).await?;
        stack_from_record("stack_update_if", &record)
    }

    pub async fn stack_delete(&self, stack_id: &str) -> Result<(), PocketBaseError> {
        let path = format!("api/collections/agent_stacks/records/{}", path_segment(stack_id)?);
        self.call("stack_delete", Method::DELETE, &path, &[], None).await.map(|_| ())
    }
}

fn refuse_secrets(operation: &'static str, config: &Value) -> Result<(), PocketBaseError> {
    match secret_looking_key(config) {
        Some(key) => Err(PocketBaseError::new(
            operation,
            PocketBaseErrorKind::SecretInConfig { key: key.clone() },
            format!("config key `{key}` looks like a secret"),
        )),
        None => Ok(()),
    }
}
