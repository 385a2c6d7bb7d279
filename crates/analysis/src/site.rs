//! Allocation sites and how they roll up: file, gem (from the path), class, type.

use std::fmt;

use heapfleet_dump::ObjectType;
use serde::{Deserialize, Serialize};

/// Where objects were allocated, refined by what they are. Comparable across dumps and processes
/// (it holds no addresses).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SiteKey {
    /// Allocation file; `None` without allocation tracing (or for objects allocated before it).
    pub file: Option<String>,
    /// Allocation line; can be `None` while `file` is known.
    pub line: Option<u32>,
    /// The object's type.
    pub object_type: ObjectType,
    /// The object's class name, resolved through the dump's own CLASS/MODULE objects.
    pub class_name: Option<String>,
}

impl SiteKey {
    /// Returns `file:line`, `file`, or `(unknown site)` for objects without allocation info.
    pub fn location(&self) -> String {
        match (&self.file, self.line) {
            (Some(file), Some(line)) => format!("{file}:{line}"),
            (Some(file), None) => file.clone(),
            (None, _) => UNKNOWN_SITE.to_owned(),
        }
    }

    /// Returns the gem the file belongs to, if its path is inside an installed gem.
    pub fn gem(&self) -> Option<&str> {
        self.file.as_deref().and_then(gem_from_path)
    }
}

/// Whether an allocation file `path` is the `wanted` file: equal to it, or ending with it after
/// a `/` (so `app/models/user.rb` matches `/srv/app/models/user.rb`, and `er.rb` matches nothing).
pub fn path_matches(path: &str, wanted: &str) -> bool {
    path == wanted
        || path
            .strip_suffix(wanted)
            .is_some_and(|head| head.ends_with('/') || wanted.starts_with('/'))
}

impl fmt::Display for SiteKey {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{} {}", self.object_type, self.location())?;
        if let Some(class_name) = &self.class_name {
            write!(formatter, " ({class_name})")?;
        }
        Ok(())
    }
}

/// The label of objects that carry no allocation file.
pub const UNKNOWN_SITE: &str = "(unknown site)";

/// Returns the gem name for a path inside a gem directory:
/// `.../gems/rack-2.2.8/lib/rack.rb` -> `rack`, `.../bundler/gems/rails-0a1b2c3d4e5f/...` ->
/// `rails`. Returns `None` for application and standard-library paths.
pub fn gem_from_path(path: &str) -> Option<&str> {
    // The last `/gems/` wins: gem directories can sit inside a vendored `gems` directory.
    let start = path.rfind("/gems/")? + "/gems/".len();
    let directory = path[start..].split('/').next()?;
    // A gem directory is `<name>-<version>`; names may contain dashes, versions start with a digit
    // (or, for git checkouts under bundler/gems, are a hex revision).
    let (name, version) = directory.rsplit_once('-')?;
    let looks_like_version = version.starts_with(|character: char| character.is_ascii_digit())
        || (version.len() >= 7 && version.bytes().all(|byte| byte.is_ascii_hexdigit()));
    (!name.is_empty() && looks_like_version).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_gem_from_path_reads_gem_directories() {
        assert_eq!(
            gem_from_path("/usr/lib/ruby/gems/3.1.0/gems/rack-2.2.8/lib/rack/request.rb"),
            Some("rack")
        );
        assert_eq!(
            gem_from_path("/app/vendor/bundle/ruby/3.1.0/gems/active-support-7.1.3.2/lib/a.rb"),
            Some("active-support")
        );
        assert_eq!(
            gem_from_path("/app/vendor/bundle/ruby/3.1.0/bundler/gems/rails-0a1b2c3d4e5f/lib/a.rb"),
            Some("rails")
        );
        assert_eq!(gem_from_path("/app/app/models/user.rb"), None);
        assert_eq!(gem_from_path("/usr/lib/ruby/3.1.0/set.rb"), None);
        assert_eq!(gem_from_path("/srv/gems/notagem/lib/x.rb"), None);
    }

    #[test]
    fn test_site_key_location_and_display() {
        let site = SiteKey {
            file: Some("/app/a.rb".to_owned()),
            line: Some(3),
            object_type: ObjectType::String,
            class_name: Some("String".to_owned()),
        };
        assert_eq!(site.location(), "/app/a.rb:3");
        assert_eq!(site.to_string(), "STRING /app/a.rb:3 (String)");
        let unknown = SiteKey {
            file: None,
            line: None,
            object_type: ObjectType::Hash,
            class_name: None,
        };
        assert_eq!(unknown.location(), UNKNOWN_SITE);
    }
}
