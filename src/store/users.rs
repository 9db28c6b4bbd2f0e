//! `users` (with the profile image joined in).

use tokio_postgres::GenericClient;
use tokio_postgres::Row;
use uuid::Uuid;

use super::binary_contents;
use crate::domain::{Role, UserDto};
use crate::error::ApiResult;

/// A user row with its password hash (never leaves the service layer).
#[derive(Debug, Clone)]
pub struct UserRecord {
    pub dto: UserDto,
    pub password_hash: String,
}

const SELECT: &str = "SELECT u.id, u.username, u.email, u.role, u.password,
        b.id, b.file_name, b.size, b.content_type, b.upload_status
    FROM users u LEFT JOIN binary_contents b ON b.id = u.profile_id";

/// Maps [`SELECT`]'s first ten columns starting at `at` (also used by joins elsewhere).
pub(crate) fn from_row(row: &Row, at: usize) -> Option<UserRecord> {
    let id: Option<Uuid> = row.get(at);
    Some(UserRecord {
        dto: UserDto {
            id: id?,
            username: row.get(at + 1),
            email: row.get(at + 2),
            role: Role::parse(row.get::<_, &str>(at + 3)).unwrap_or(Role::User),
            profile: binary_contents::from_row(row, at + 5),
            online: None,
        },
        password_hash: row.get(at + 4),
    })
}

/// The user columns for joins: `alias` is the users table alias, `balias` its profile's.
pub(crate) fn join_cols(alias: &str, balias: &str) -> String {
    format!(
        "{alias}.id, {alias}.username, {alias}.email, {alias}.role, {alias}.password,
         {balias}.id, {balias}.file_name, {balias}.size, {balias}.content_type, {balias}.upload_status"
    )
}

pub async fn find(c: &impl GenericClient, id: Uuid) -> ApiResult<Option<UserRecord>> {
    let sql = format!("{SELECT} WHERE u.id = $1");
    Ok(c.query_opt(&sql, &[&id])
        .await?
        .and_then(|r| from_row(&r, 0)))
}

/// The users among `ids` that exist.
pub async fn find_many(
    c: &impl GenericClient,
    ids: &[Uuid],
) -> Result<Vec<UserRecord>, tokio_postgres::Error> {
    let sql = format!("{SELECT} WHERE u.id = ANY($1)");
    Ok(c.query(&sql, &[&ids])
        .await?
        .iter()
        .filter_map(|r| from_row(r, 0))
        .collect())
}

pub async fn find_by_username(c: &impl GenericClient, name: &str) -> ApiResult<Option<UserRecord>> {
    let sql = format!("{SELECT} WHERE u.username = $1");
    Ok(c.query_opt(&sql, &[&name])
        .await?
        .and_then(|r| from_row(&r, 0)))
}

/// The ids among `ids` that belong to existing users (each once, in no particular order).
pub async fn existing_ids(c: &impl GenericClient, ids: &[Uuid]) -> ApiResult<Vec<Uuid>> {
    Ok(c.query("SELECT id FROM users WHERE id = ANY($1)", &[&ids])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

pub async fn list(c: &impl GenericClient) -> ApiResult<Vec<UserDto>> {
    let sql = format!("{SELECT} ORDER BY u.created_at");
    Ok(c.query(&sql, &[])
        .await?
        .iter()
        .filter_map(|r| from_row(r, 0).map(|u| u.dto))
        .collect())
}

pub async fn exists_email(
    c: &impl GenericClient,
    email: &str,
    except: Option<Uuid>,
) -> ApiResult<bool> {
    Ok(c.query_opt(
        "SELECT 1 FROM users WHERE email = $1 AND ($2::uuid IS NULL OR id <> $2)",
        &[&email, &except],
    )
    .await?
    .is_some())
}

pub async fn exists_username(
    c: &impl GenericClient,
    name: &str,
    except: Option<Uuid>,
) -> ApiResult<bool> {
    Ok(c.query_opt(
        "SELECT 1 FROM users WHERE username = $1 AND ($2::uuid IS NULL OR id <> $2)",
        &[&name, &except],
    )
    .await?
    .is_some())
}

pub async fn insert(
    c: &impl GenericClient,
    id: Uuid,
    username: &str,
    email: &str,
    password_hash: &str,
    profile_id: Option<Uuid>,
    role: Role,
) -> Result<(), tokio_postgres::Error> {
    c.execute(
        "INSERT INTO users (id, created_at, updated_at, username, email, password, profile_id, role)
         VALUES ($1, now(), now(), $2, $3, $4, $5, $6)",
        &[&id, &username, &email, &password_hash, &profile_id, &role.as_str()],
    )
    .await?;
    Ok(())
}

/// Updates the given fields (None = unchanged).
pub async fn update(
    c: &impl GenericClient,
    id: Uuid,
    username: Option<&str>,
    email: Option<&str>,
    password_hash: Option<&str>,
    profile_id: Option<Uuid>,
) -> Result<(), tokio_postgres::Error> {
    c.execute(
        "UPDATE users SET updated_at = now(),
            username = COALESCE($2, username), email = COALESCE($3, email),
            password = COALESCE($4, password), profile_id = COALESCE($5, profile_id)
         WHERE id = $1",
        &[&id, &username, &email, &password_hash, &profile_id],
    )
    .await?;
    Ok(())
}

pub async fn set_role(c: &impl GenericClient, id: Uuid, role: Role) -> ApiResult<()> {
    c.execute(
        "UPDATE users SET role = $2, updated_at = now() WHERE id = $1",
        &[&id, &role.as_str()],
    )
    .await?;
    Ok(())
}

pub async fn delete(c: &impl GenericClient, id: Uuid) -> ApiResult<bool> {
    Ok(c.execute("DELETE FROM users WHERE id = $1", &[&id]).await? > 0)
}

/// True when a user with this username or this e-mail exists (admin bootstrap).
pub async fn exists_any(c: &impl GenericClient, username: &str, email: &str) -> ApiResult<bool> {
    Ok(c.query_opt(
        "SELECT 1 FROM users WHERE username = $1 OR email = $2",
        &[&username, &email],
    )
    .await?
    .is_some())
}
