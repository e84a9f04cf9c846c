//! Types that parse, not validate: holding one means the value is valid.

mod email;
mod key;
mod password;
mod slug;

pub use email::{Email, EmailError};
pub use key::{ApiKey, KeyError, KeyHash, KEY_PREFIX};
pub use password::{hash_password, hashes_in_flight, verify_password, HashBusy, Password, PasswordError, MAX_HASH_QUEUE, MIN_PASSWORD_LEN};
pub use slug::{Slug, SlugError};
