//! Who becomes a new tenant's owner. PocketBase's `users` sign-up is open and unverified, so
//! an account with the owner's e-mail may belong to whoever registered it first: adopting it
//! would hand them the tenant and its plan. A verified account proved its e-mail; an
//! unverified one is adopted only when the operator says so, and then claimed: its password is
//! replaced (ending the registrant's sessions) and the owner signs in through a password reset,
//! which proves the e-mail.

/// The account that has the owner's e-mail, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExistingAccount {
    None,
    Verified,
    Unverified,
}

/// What to do with the owner's account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerDecision {
    /// Create a verified account with a password nobody knows (the owner resets it).
    Create,
    /// Use the verified account as it is.
    Adopt,
    /// Replace the unverified account's password and mark it verified.
    Claim,
    /// Refuse: someone else may have registered the e-mail.
    Refuse,
}

pub fn owner_decision(existing: ExistingAccount, adopt_existing: bool) -> OwnerDecision {
    match (existing, adopt_existing) {
        (ExistingAccount::None, _) => OwnerDecision::Create,
        (ExistingAccount::Verified, _) => OwnerDecision::Adopt,
        (ExistingAccount::Unverified, true) => OwnerDecision::Claim,
        (ExistingAccount::Unverified, false) => OwnerDecision::Refuse,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unverified_account_is_never_adopted_silently() {
        use ExistingAccount::*;
        use OwnerDecision::*;
        let table = [
            (None, false, Create),
            (None, true, Create),
            (Verified, false, Adopt),
            (Verified, true, Adopt),
            (Unverified, false, Refuse),
            (Unverified, true, Claim),
        ];
        for (existing, adopt, expected) in table {
            assert_eq!(owner_decision(existing, adopt), expected, "{existing:?} adopt={adopt}");
        }
    }
}
