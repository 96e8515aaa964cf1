//! The table's items as typed records: each kind a Rust type, converted to and from its item
//! here and only here, so an attribute name is written once and a typo does not compile into
//! a silent miss. (Kinds move here one by one; the connection's settings are the first.)

use aws_sdk_dynamodb::types::AttributeValue;

use super::store::{Item, ItemExt, STATUS, n, s};
use crate::domain::keys::{Key, TenantScope};

const KEY_ID: &str = "key_id";
const INVOICE_OUTBOUND_SYNC: &str = "invoice_outbound_sync";
const RAZORPAY_ACCOUNT_ID: &str = "razorpay_account_id";
const UPDATED_AT: &str = "updated_at";

/// A tenant/environment's Razorpay connection settings (its secrets live in Secrets Manager).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionSettings {
    pub active: bool,
    pub key_id: String,
    pub invoice_outbound_sync: bool,
    /// When set, webhooks must carry this `account_id`.
    pub razorpay_account_id: Option<String>,
    /// Epoch seconds.
    pub updated_at: u64,
}

impl ConnectionSettings {
    pub const KIND: &'static str = "CONNECTION";

    /// One per scope: `CONNECTION#razorpay`.
    pub fn key(scope: &TenantScope) -> Key {
        scope.key(Self::KIND, "razorpay")
    }

    pub fn to_item(&self) -> Item {
        let mut item = Item::from([
            (
                STATUS.to_owned(),
                s(if self.active { "ACTIVE" } else { "INACTIVE" }),
            ),
            (KEY_ID.to_owned(), s(&self.key_id)),
            (
                INVOICE_OUTBOUND_SYNC.to_owned(),
                AttributeValue::Bool(self.invoice_outbound_sync),
            ),
            (UPDATED_AT.to_owned(), n(self.updated_at)),
        ]);
        if let Some(account) = &self.razorpay_account_id {
            item.insert(RAZORPAY_ACCOUNT_ID.to_owned(), s(account));
        }
        item
    }

    /// The record of a stored item (absent attributes read as off / empty).
    pub fn from_item(item: &Item) -> ConnectionSettings {
        ConnectionSettings {
            active: item.str_attr(STATUS) == Some("ACTIVE"),
            key_id: item.str_attr(KEY_ID).unwrap_or_default().to_owned(),
            invoice_outbound_sync: matches!(
                item.get(INVOICE_OUTBOUND_SYNC),
                Some(AttributeValue::Bool(true))
            ),
            razorpay_account_id: item.str_attr(RAZORPAY_ACCOUNT_ID).map(str::to_owned),
            updated_at: item.u64_attr(UPDATED_AT).unwrap_or(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_settings_round_trip_through_their_item() {
        let settings = ConnectionSettings {
            active: true,
            key_id: "rzp_test_abc".into(),
            invoice_outbound_sync: true,
            razorpay_account_id: Some("acc_1".into()),
            updated_at: 1_764_000_000,
        };
        let item = settings.to_item();
        assert_eq!(item.str_attr("status"), Some("ACTIVE"));
        assert_eq!(ConnectionSettings::from_item(&item), settings);
        let bare = ConnectionSettings {
            razorpay_account_id: None,
            invoice_outbound_sync: false,
            ..settings
        };
        assert_eq!(ConnectionSettings::from_item(&bare.to_item()), bare);
        assert!(!bare.to_item().contains_key("razorpay_account_id"));
    }
}
