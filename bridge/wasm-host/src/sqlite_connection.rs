//! A `spin:sqlite` connection: the resource a store component's handle points at, owned
//! by the instance that opened it (`crate::spin_sqlite`). A leaf, so the bindings can name
//! it.

pub struct SqliteConnection(pub(crate) rusqlite::Connection);
