//! Typed ids, so that an app's id cannot be passed where a key's is meant. Each is the row's
//! `BIGINT`/`INTEGER` id: stored and serialised as the bare number, shown as the number.

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize, sqlx::Type)]
        #[serde(transparent)]
        #[sqlx(transparent)]
        pub struct $name(pub i64);

        impl $name {
            /// The bare number (for SQL binds and URLs).
            pub fn get(self) -> i64 {
                self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = std::num::ParseIntError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                s.parse().map($name)
            }
        }

        impl From<$name> for i64 {
            fn from(id: $name) -> i64 {
                id.0
            }
        }
    };
}

id_type!(
    /// An account (developer or administrator).
    AccountId
);
id_type!(
    /// A developer's app.
    AppId
);
id_type!(
    /// An API key.
    KeyId
);
id_type!(
    /// A published API.
    ApiId
);
id_type!(
    /// A plan of an API.
    PlanId
);
id_type!(
    /// An app's subscription to an API.
    SubscriptionId
);
id_type!(
    /// A finalized invoice.
    InvoiceId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_show_and_serialise_as_the_bare_number() {
        let id: KeyId = "42".parse().unwrap();
        assert_eq!((id, id.to_string(), id.get()), (KeyId(42), "42".to_owned(), 42));
        assert_eq!(serde_json::to_string(&AppId(7)).unwrap(), "7");
        assert_eq!(serde_json::from_str::<AccountId>("9").unwrap(), AccountId(9));
        assert!("x".parse::<PlanId>().is_err());
    }
}
