//! The one DynamoDB table (`pk`, `sk`, TTL attribute `expires_at`): conditional create,
//! conditional update on an expected status and version, `TransactWriteItems` for items that
//! must appear together, and typed errors (never a string match on a message).

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Delete, Put, ReturnValue, ReturnValuesOnConditionCheckFailure,
    TransactWriteItem, Update as TxUpdate,
};
use thiserror::Error;

use super::AwsError;
use crate::domain::error::{Classify, ErrorClass};
use crate::domain::keys::Key;
use crate::ports::PortFuture;

/// A DynamoDB item: attribute name to value.
pub type Item = HashMap<String, AttributeValue>;

pub const PK: &str = "pk";
pub const SK: &str = "sk";
/// The TTL attribute (epoch seconds). TTL only cleans up: expiry is always checked in code.
pub const EXPIRES_AT: &str = "expires_at";
pub const STATUS: &str = "status";
pub const VERSION: &str = "version";
/// The webhook event log's index (`log`): a scope's events by the time they arrived.
pub const LOG_INDEX: &str = "log";
pub const LOG_PK: &str = "log_pk";
pub const LOG_SK: &str = "log_sk";
/// The invoice index (`invoice`): the events and sweep corrections about one invoice, by
/// time (sparse: only items that know their invoice carry `inv_pk`).
pub const INVOICE_INDEX: &str = "invoice";
pub const INVOICE_PK: &str = "inv_pk";
pub const INVOICE_SK: &str = "inv_sk";

/// A string attribute value.
pub fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

/// A number attribute value.
pub fn n(value: u64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// Typed reads of attributes.
pub trait ItemExt {
    fn str_attr(&self, name: &str) -> Option<&str>;
    fn u64_attr(&self, name: &str) -> Option<u64>;
}

impl ItemExt for Item {
    fn str_attr(&self, name: &str) -> Option<&str> {
        match self.get(name) {
            Some(AttributeValue::S(v)) => Some(v),
            _ => None,
        }
    }

    fn u64_attr(&self, name: &str) -> Option<u64> {
        match self.get(name) {
            Some(AttributeValue::N(v)) => v.parse().ok(),
            _ => None,
        }
    }
}

/// Why one item of a cancelled transaction was refused, in the order the writes were given.
#[derive(Debug, Clone, PartialEq)]
pub enum CancelReason {
    /// This item was fine; another one cancelled the transaction.
    None,
    /// This item's condition failed; `item` is its current value when DynamoDB returned it.
    ConditionFailed { item: Option<Item> },
    /// Another transaction was writing this item at the same time (retryable).
    Conflict,
    /// Any other reason code, as DynamoDB named it.
    Other(String),
}

#[derive(Debug, Error)]
pub enum StoreError {
    /// A create found the key already taken. `existing` is the stored item when DynamoDB
    /// returned it.
    #[error("the item already exists")]
    AlreadyExists { existing: Option<Box<Item>> },
    /// An update or delete found the item missing, or in another status or version.
    #[error("the item is not in the expected state")]
    ConditionFailed { current: Option<Box<Item>> },
    /// A transaction was cancelled; nothing of it was written.
    #[error("the transaction was cancelled: {reasons:?}")]
    TransactionCancelled { reasons: Vec<CancelReason> },
    /// The call itself failed.
    #[error("DynamoDB {0}")]
    Aws(#[from] AwsError),
    /// A stored item is not a valid record of its kind (written by other code, or damaged).
    #[error("a stored {kind} has no valid {attribute}")]
    Malformed {
        kind: &'static str,
        attribute: &'static str,
    },
}

impl Classify for StoreError {
    fn class(&self) -> ErrorClass {
        match self {
            StoreError::Aws(e) => e.class,
            StoreError::TransactionCancelled { reasons }
                if reasons.contains(&CancelReason::Conflict)
                    && !reasons
                        .iter()
                        .any(|r| matches!(r, CancelReason::ConditionFailed { .. })) =>
            {
                ErrorClass::Retryable
            }
            _ => ErrorClass::Permanent,
        }
    }
}

/// A condition the stored item must meet for a write to happen.
#[derive(Debug, Clone, PartialEq)]
pub enum Expect {
    /// The item exists.
    Exists,
    /// The item exists and its `status` is this value.
    Status(String),
    /// The item exists and its `version` is this number.
    Version(u64),
}

/// An update of some attributes of an existing item, under conditions.
#[derive(Debug, Clone, Default)]
pub struct Update {
    pub expect: Vec<Expect>,
    pub set: Item,
    pub remove: Vec<String>,
    /// Adds 1 to `version` (starting from 0 when absent).
    pub bump_version: bool,
}

/// One write of a transaction.
#[derive(Debug, Clone)]
pub enum Write {
    /// Puts the item if the key is free.
    Create { key: Key, attrs: Item },
    /// Puts the item, replacing whatever is there.
    Put { key: Key, attrs: Item },
    /// Updates the item under the update's conditions.
    Update { key: Key, update: Update },
    /// Checks the item meets these conditions, writing nothing.
    Check { key: Key, expect: Vec<Expect> },
    /// Deletes the item under these conditions.
    Delete { key: Key, expect: Vec<Expect> },
}

/// One page of a `Query`.
#[derive(Debug, Default)]
pub(crate) struct Query {
    pub index: Option<&'static str>,
    pub key_condition: String,
    pub filter: Option<String>,
    pub expr: Expr,
    pub limit: i32,
    pub newest_first: bool,
    pub start: Option<Item>,
}

/// A condition or update expression with its placeholders.
#[derive(Debug, Default)]
pub(crate) struct Expr {
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

impl Expr {
    pub(crate) fn name(&mut self, attr: &str) -> String {
        let placeholder = format!("#n{}", self.names.len());
        self.names.insert(placeholder.clone(), attr.to_owned());
        placeholder
    }

    pub(crate) fn value(&mut self, value: AttributeValue) -> String {
        let placeholder = format!(":v{}", self.values.len());
        self.values.insert(placeholder.clone(), value);
        placeholder
    }

    fn expect(&mut self, expect: &[Expect]) -> Option<String> {
        if expect.is_empty() {
            return None;
        }
        let pk = self.name(PK);
        let mut parts = vec![format!("attribute_exists({pk})")];
        for e in expect {
            match e {
                Expect::Exists => {}
                Expect::Status(status) => {
                    let name = self.name(STATUS);
                    let value = self.value(s(status.clone()));
                    parts.push(format!("{name} = {value}"));
                }
                Expect::Version(version) => {
                    let name = self.name(VERSION);
                    let value = self.value(n(*version));
                    parts.push(format!("{name} = {value}"));
                }
            }
        }
        Some(parts.join(" AND "))
    }

    fn update(&mut self, update: &Update) -> String {
        let mut sets: Vec<String> = update
            .set
            .iter()
            .map(|(attr, value)| {
                let name = self.name(attr);
                let value = self.value(value.clone());
                format!("{name} = {value}")
            })
            .collect();
        if update.bump_version {
            let name = self.name(VERSION);
            let zero = self.value(n(0));
            let one = self.value(n(1));
            sets.push(format!("{name} = if_not_exists({name}, {zero}) + {one}"));
        }
        let mut expression = format!("SET {}", sets.join(", "));
        if !update.remove.is_empty() {
            let removes: Vec<String> = update.remove.iter().map(|a| self.name(a)).collect();
            expression.push_str(&format!(" REMOVE {}", removes.join(", ")));
        }
        expression
    }

    fn names(&self) -> Option<HashMap<String, String>> {
        (!self.names.is_empty()).then(|| self.names.clone())
    }

    fn values(&self) -> Option<HashMap<String, AttributeValue>> {
        (!self.values.is_empty()).then(|| self.values.clone())
    }
}

/// Condition of a create: the key is free.
fn create_condition(expr: &mut Expr) -> String {
    let pk = expr.name(PK);
    format!("attribute_not_exists({pk})")
}

fn key_map(key: &Key) -> Item {
    HashMap::from([(PK.to_owned(), s(&key.pk)), (SK.to_owned(), s(&key.sk))])
}

fn with_key(key: &Key, mut attrs: Item) -> Item {
    attrs.extend(key_map(key));
    attrs
}

fn aws_error<E>(
    operation: &'static str,
    err: &aws_sdk_dynamodb::error::SdkError<
        E,
        aws_smithy_runtime_api::client::orchestrator::HttpResponse,
    >,
) -> StoreError
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    StoreError::Aws(AwsError::from_sdk(operation, err))
}

/// What every item of a transaction shares: the table, the placeholders of its expressions,
/// and the stored item returned when its condition fails.
macro_rules! common {
    ($builder:expr, $table:expr, $expr:expr) => {
        $builder
            .table_name($table)
            .set_expression_attribute_names($expr.names())
            .set_expression_attribute_values($expr.values())
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
    };
}

fn tx_build_error(e: aws_sdk_dynamodb::error::BuildError) -> StoreError {
    StoreError::Aws(AwsError::build("TransactWriteItems", e))
}

/// The table, through the AWS SDK.
#[derive(Debug, Clone)]
pub struct Store {
    client: Client,
    table: String,
}

impl Store {
    pub fn new(client: Client, table: impl Into<String>) -> Store {
        Store {
            client,
            table: table.into(),
        }
    }

    pub fn from_sdk_config(config: &aws_config::SdkConfig, table: impl Into<String>) -> Store {
        Store::new(Client::new(config), table)
    }

    /// Reads an item, strongly consistent.
    pub async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key_map(key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| aws_error("GetItem", &e))?;
        Ok(output.item)
    }

    /// Puts an item, replacing whatever was there (for settings that are simply overwritten).
    pub async fn put(&self, key: &Key, attrs: Item) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(with_key(key, attrs)))
            .send()
            .await
            .map_err(|e| aws_error("PutItem", &e))?;
        Ok(())
    }

    /// Puts an item only if its key is free; otherwise [`StoreError::AlreadyExists`] with the
    /// stored item.
    pub async fn create(&self, key: &Key, attrs: Item) -> Result<(), StoreError> {
        let mut expr = Expr::default();
        let condition = create_condition(&mut expr);
        match self.put_if(key, attrs, condition, expr).await {
            Err(StoreError::ConditionFailed { current }) => {
                Err(StoreError::AlreadyExists { existing: current })
            }
            other => other,
        }
    }

    /// Puts an item under any condition expression; a failed condition returns the stored
    /// item (`ALL_OLD`) in [`StoreError::ConditionFailed`].
    pub(crate) async fn put_if(
        &self,
        key: &Key,
        attrs: Item,
        condition: String,
        expr: Expr,
    ) -> Result<(), StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(with_key(key, attrs)))
            .condition_expression(condition)
            .set_expression_attribute_names(expr.names())
            .set_expression_attribute_values(expr.values())
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err) => match err.as_service_error() {
                Some(aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(ccf)) => {
                    Err(StoreError::ConditionFailed {
                        current: ccf.item().cloned().map(Box::new),
                    })
                }
                _ => Err(aws_error("PutItem", &err)),
            },
        }
    }

    /// Updates an existing item under the update's conditions and returns the new item.
    /// A failed condition returns [`StoreError::ConditionFailed`] with the stored item, if any.
    pub async fn update(&self, key: &Key, update: &Update) -> Result<Item, StoreError> {
        let mut expr = Expr::default();
        let expression = expr.update(update);
        let condition = expr
            .expect(&or_exists(update.expect.clone()))
            .unwrap_or_default();
        self.update_with(key, expression, condition, expr).await
    }

    /// Updates an item with any update and condition expression.
    pub(crate) async fn update_with(
        &self,
        key: &Key,
        expression: String,
        condition: String,
        expr: Expr,
    ) -> Result<Item, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_map(key)))
            .update_expression(expression)
            .condition_expression(condition)
            .set_expression_attribute_names(expr.names())
            .set_expression_attribute_values(expr.values())
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(output) => Ok(output.attributes.unwrap_or_default()),
            Err(err) => match err.as_service_error() {
                Some(aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(ccf)) => {
                    Err(StoreError::ConditionFailed {
                        current: ccf.item().cloned().map(Box::new),
                    })
                }
                _ => Err(aws_error("UpdateItem", &err)),
            },
        }
    }

    /// Deletes an item; with conditions, only if it meets them.
    pub async fn delete(&self, key: &Key, expect: &[Expect]) -> Result<(), StoreError> {
        let mut expr = Expr::default();
        let condition = expr.expect(expect);
        self.delete_with(key, condition, expr).await
    }

    pub(crate) async fn delete_with(
        &self,
        key: &Key,
        condition: Option<String>,
        expr: Expr,
    ) -> Result<(), StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key_map(key)))
            .set_condition_expression(condition)
            .set_expression_attribute_names(expr.names())
            .set_expression_attribute_values(expr.values())
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err) => match err.as_service_error() {
                Some(aws_sdk_dynamodb::operation::delete_item::DeleteItemError::ConditionalCheckFailedException(ccf)) => {
                    Err(StoreError::ConditionFailed {
                        current: ccf.item().cloned().map(Box::new),
                    })
                }
                _ => Err(aws_error("DeleteItem", &err)),
            },
        }
    }

    /// One page of a query (of the table, or of an index), newest sort key first when
    /// `newest_first`; returns the items and the key to start the next page from, if any.
    pub(crate) async fn query(
        &self,
        query: Query,
    ) -> Result<(Vec<Item>, Option<Item>), StoreError> {
        let Query {
            index,
            key_condition,
            filter,
            expr,
            limit,
            newest_first,
            start,
        } = query;
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .set_index_name(index.map(str::to_owned))
            .key_condition_expression(key_condition)
            .set_filter_expression(filter)
            .set_expression_attribute_names(expr.names())
            .set_expression_attribute_values(expr.values())
            .limit(limit)
            .scan_index_forward(!newest_first)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| aws_error("Query", &e))?;
        Ok((output.items.unwrap_or_default(), output.last_evaluated_key))
    }

    /// Writes all of `writes` or none of them. A failed condition anywhere cancels the whole
    /// transaction with [`StoreError::TransactionCancelled`], one reason per write, in order.
    pub async fn transact(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        let items = writes
            .into_iter()
            .map(|write| self.transact_item(write))
            .collect::<Result<Vec<_>, _>>()?;
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err) => match err.as_service_error() {
                Some(aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(tce)) => {
                    let reasons = tce
                        .cancellation_reasons()
                        .iter()
                        .map(|reason| match reason.code() {
                            None | Some("None") => CancelReason::None,
                            Some("ConditionalCheckFailed") => CancelReason::ConditionFailed {
                                item: reason.item().cloned(),
                            },
                            Some("TransactionConflict") => CancelReason::Conflict,
                            Some(other) => CancelReason::Other(other.to_owned()),
                        })
                        .collect();
                    Err(StoreError::TransactionCancelled { reasons })
                }
                _ => Err(aws_error("TransactWriteItems", &err)),
            },
        }
    }

    fn transact_item(&self, write: Write) -> Result<TransactWriteItem, StoreError> {
        let mut expr = Expr::default();
        match write {
            Write::Create { key, attrs } => {
                let condition = create_condition(&mut expr);
                self.tx_put(&key, attrs, Some(condition), expr)
            }
            Write::Put { key, attrs } => self.tx_put(&key, attrs, None, expr),
            Write::Update { key, update } => {
                let expression = expr.update(&update);
                let condition = expr.expect(&or_exists(update.expect));
                let update = common!(TxUpdate::builder(), &self.table, expr)
                    .set_key(Some(key_map(&key)))
                    .update_expression(expression)
                    .set_condition_expression(condition);
                Ok(TransactWriteItem::builder()
                    .update(update.build().map_err(tx_build_error)?)
                    .build())
            }
            Write::Check { key, expect } => {
                let condition = expr.expect(&or_exists(expect)).unwrap_or_default();
                let check = common!(ConditionCheck::builder(), &self.table, expr)
                    .set_key(Some(key_map(&key)))
                    .condition_expression(condition);
                Ok(TransactWriteItem::builder()
                    .condition_check(check.build().map_err(tx_build_error)?)
                    .build())
            }
            Write::Delete { key, expect } => {
                let condition = expr.expect(&expect);
                let delete = common!(Delete::builder(), &self.table, expr)
                    .set_key(Some(key_map(&key)))
                    .set_condition_expression(condition);
                Ok(TransactWriteItem::builder()
                    .delete(delete.build().map_err(tx_build_error)?)
                    .build())
            }
        }
    }

    /// A put in a transaction, under `condition` when given.
    fn tx_put(
        &self,
        key: &Key,
        attrs: Item,
        condition: Option<String>,
        expr: Expr,
    ) -> Result<TransactWriteItem, StoreError> {
        let put = common!(Put::builder(), &self.table, expr)
            .set_item(Some(with_key(key, attrs)))
            .set_condition_expression(condition);
        Ok(TransactWriteItem::builder()
            .put(put.build().map_err(tx_build_error)?)
            .build())
    }
}

/// Conditions of a write to an existing item: at least that it exists.
pub(crate) fn or_exists(mut expect: Vec<Expect>) -> Vec<Expect> {
    if expect.is_empty() {
        expect.push(Expect::Exists);
    }
    expect
}

impl crate::ports::Table for Store {
    fn get<'a>(&'a self, key: &'a Key) -> PortFuture<'a, Result<Option<Item>, StoreError>> {
        Box::pin(Store::get(self, key))
    }

    fn put<'a>(&'a self, key: &'a Key, attrs: Item) -> PortFuture<'a, Result<(), StoreError>> {
        Box::pin(Store::put(self, key, attrs))
    }

    fn create<'a>(&'a self, key: &'a Key, attrs: Item) -> PortFuture<'a, Result<(), StoreError>> {
        Box::pin(Store::create(self, key, attrs))
    }

    fn update<'a>(
        &'a self,
        key: &'a Key,
        update: &'a Update,
    ) -> PortFuture<'a, Result<Item, StoreError>> {
        Box::pin(Store::update(self, key, update))
    }

    fn delete<'a>(
        &'a self,
        key: &'a Key,
        expect: &'a [Expect],
    ) -> PortFuture<'a, Result<(), StoreError>> {
        Box::pin(Store::delete(self, key, expect))
    }

    fn transact(&self, writes: Vec<Write>) -> PortFuture<'_, Result<(), StoreError>> {
        Box::pin(Store::transact(self, writes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expressions_use_placeholders_only() {
        let mut expr = Expr::default();
        let update = Update {
            expect: vec![Expect::Status("INITIATED".into()), Expect::Version(3)],
            set: HashMap::from([(STATUS.to_owned(), s("SUCCEEDED"))]),
            remove: vec!["lease".into()],
            bump_version: true,
        };
        let set = expr.update(&update);
        let condition = expr.expect(&update.expect).unwrap();
        assert_eq!(
            set,
            "SET #n0 = :v0, #n1 = if_not_exists(#n1, :v1) + :v2 REMOVE #n2"
        );
        assert_eq!(
            condition,
            "attribute_exists(#n3) AND #n4 = :v3 AND #n5 = :v4"
        );
        let names = expr.names().unwrap();
        assert_eq!(names["#n0"], "status");
        assert_eq!(names["#n3"], "pk");
        assert_eq!(names["#n5"], "version");
        assert_eq!(expr.values().unwrap()[":v4"], n(3));
    }

    #[test]
    fn classes_of_store_errors() {
        let conflict = StoreError::TransactionCancelled {
            reasons: vec![CancelReason::None, CancelReason::Conflict],
        };
        assert!(conflict.is_retryable());
        let failed = StoreError::TransactionCancelled {
            reasons: vec![
                CancelReason::ConditionFailed { item: None },
                CancelReason::Conflict,
            ],
        };
        assert!(!failed.is_retryable());
        assert!(!StoreError::AlreadyExists { existing: None }.is_retryable());
    }
}
