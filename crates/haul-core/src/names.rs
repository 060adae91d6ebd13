//! Closed sets of names (`queued`, `media`, `audio`, `bearer`, ...) as enums, written once by [`named_enum!`]:
//! the text form for the store and the wire, parsing that says what was expected, and serde as that text.
//!
//! Every such enum is parsed once where text enters haul (a request body, a flag, a stored column) and compared
//! as an enum everywhere after, so a misspelt name is a compile error rather than a branch never taken.

use std::fmt;

/// A name that is not one of its set's; says which set and what it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownName {
    /// What kind of name it was meant to be (`download state`, `kind`, ...).
    pub what: &'static str,
    pub given: String,
    pub expected: &'static [&'static str],
}

impl fmt::Display for UnknownName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown {} {:?}; expected one of {}", self.what, self.given, self.expected.join(", "))
    }
}

impl std::error::Error for UnknownName {}

/// Declares an enum whose variants each have one text name: `ALL`, `NAMES`, `as_str`, `Display`, `FromStr`
/// (exact match; [`UnknownName`] otherwise) and serde as that text.
#[macro_export]
macro_rules! named_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident as $what:literal {
            $( $(#[$variant_meta:meta])* $variant:ident = $text:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        $vis enum $name {
            $( $(#[$variant_meta])* $variant ),+
        }

        impl $name {
            pub const ALL: [$name; [$($text),+].len()] = [$($name::$variant),+];
            pub const NAMES: [&'static str; [$($text),+].len()] = [$($text),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $text ),+
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.pad(self.as_str())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::names::UnknownName;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                match text {
                    $( $text => Ok($name::$variant), )+
                    _ => Err($crate::names::UnknownName {
                        what: $what,
                        given: text.to_owned(),
                        expected: &Self::NAMES,
                    }),
                }
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <::std::borrow::Cow<'de, str> as ::serde::Deserialize>::deserialize(deserializer)?;
                text.parse().map_err(::serde::de::Error::custom)
            }
        }
    };
}

#[cfg(test)]
mod tests {
    crate::named_enum! {
        /// A set for the test.
        enum Colour as "colour" {
            Red = "red",
            DarkBlue = "dark-blue",
        }
    }

    #[test]
    fn names_round_trip_and_unknown_ones_say_what_was_expected() {
        for colour in Colour::ALL {
            assert_eq!(colour.as_str().parse::<Colour>(), Ok(colour));
            assert_eq!(serde_json::to_string(&colour).unwrap(), format!("\"{colour}\""));
        }
        let error = "Red".parse::<Colour>().unwrap_err();
        assert_eq!(error.to_string(), r#"unknown colour "Red"; expected one of red, dark-blue"#);
        assert_eq!(serde_json::from_str::<Colour>("\"dark-blue\"").unwrap(), Colour::DarkBlue);
        assert!(serde_json::from_str::<Colour>("\"green\"").unwrap_err().to_string().contains("expected one of"));
        assert_eq!(format!("[{:>5}]", Colour::Red), "[  red]");
    }
}
