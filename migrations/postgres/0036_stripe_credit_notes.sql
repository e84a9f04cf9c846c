-- Credit notes Stripe reported (`credit_note.created`/`.updated`/`.voided`), for the revenue
-- reports: what a note takes off an invoice beyond what it refunds to the payment method (that
-- part arrives as `charge.refunded`): `total` minus its refunds, credited to the customer's balance
-- or settled out of band. Void is final: a late `created` does not bring a voided note back.
CREATE TABLE stripe_credit_notes (
    credit_note_id  TEXT PRIMARY KEY,
    customer_id     TEXT,
    account_id      BIGINT REFERENCES accounts(id) ON DELETE SET NULL,
    currency        TEXT NOT NULL,
    credited        BIGINT NOT NULL CHECK (credited >= 0),
    status          TEXT NOT NULL,
    created_at      BIGINT NOT NULL
);
CREATE INDEX stripe_credit_notes_at_idx ON stripe_credit_notes(created_at);
