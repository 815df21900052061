"""Masking of link tokens and codes in text kept for operators."""

from __future__ import annotations

from portico.redact import mask_links, mask_values


def test_tokens_of_every_kind_of_link_are_masked():
    text = (
        "Review: https://portal.example/s/AbC-12_x. Sign in: https://portal.example/portal/link/"
        "Qw3rTy Pay: https://portal.example/pay/P4y-T0k3n?checkout=success "
        'Shared: <a href="https://portal.example/share/Sh4r3&amp;token=xyz">file</a>'
    )
    masked = mask_links(text)
    for secret in ("AbC-12_x", "Qw3rTy", "P4y-T0k3n", "Sh4r3", "xyz"):
        assert secret not in masked
    assert "https://portal.example/s/****." in masked  # the sentence's full stop is kept
    assert "/pay/****?checkout=success" in masked
    assert "&amp;token=****" in masked


def test_other_paths_and_parameters_stay_readable():
    text = "https://portal.example/docs/guide?page=2 /api/v1/approvals/42 /portal/invoices/7"
    assert mask_links(text) == text


def test_a_code_is_masked_as_a_whole_word_only():
    text = "Reply YES 4821 to approve or NO 4821 <reason>. Ref 148210, $4,821.00"
    assert mask_values(text, ["4821", ""]) == (
        "Reply YES **** to approve or NO **** <reason>. Ref 148210, $4,821.00"
    )
