"""Who may be offered what: validity window, suitability, products held, lifecycle, rules.

Each check returns a reason code for the decision's explanation, or None when the offer passes.
The customer's side is read once per decision (``CustomerFacts``), the offer's side is compiled
once per catalogue version, so a decision over 100 offers costs 100 cheap calls.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from decisioning.domain import LIFECYCLE_STAGES, Offer, risk_number
from decisioning.errors import InvalidInput
from decisioning.rules import RuleCheck

NOT_YET_VALID = "NOT_YET_VALID"
EXPIRED = "EXPIRED"
UNSUITABLE_RISK = "UNSUITABLE_RISK"
RISK_PROFILE_MISSING = "RISK_PROFILE_MISSING"
ALREADY_HOLDS_PRODUCT = "ALREADY_HOLDS_PRODUCT"
LIFECYCLE_MISMATCH = "LIFECYCLE_MISMATCH"
RETIRED = "RETIRED"


@dataclass(frozen=True, slots=True)
class CustomerFacts:
    """The attributes the built-in checks read, parsed once per decision.

    ``risk_tolerance`` is 1-5 (from "C1".."C5") or None when the customer has no assessment;
    without one only R1 products are suitable, as for an unassessed investor.
    """

    attributes: Mapping[str, Any]
    risk_tolerance: int | None
    products: frozenset[str]
    lifecycle: str | None

    @classmethod
    def of(cls, attributes: Mapping[str, Any], prefix: str = "context") -> CustomerFacts:
        tolerance = attributes.get("risk_tolerance")
        if tolerance is not None and not isinstance(tolerance, str):
            raise InvalidInput("must be one of C1..C5", field=f"{prefix}.risk_tolerance")
        products = attributes.get("products") or ()
        if isinstance(products, str) or not isinstance(products, list | tuple):
            raise InvalidInput("must be a list of product codes", field=f"{prefix}.products")
        lifecycle = attributes.get("lifecycle")
        if lifecycle is not None and lifecycle not in LIFECYCLE_STAGES:
            raise InvalidInput(
                f"must be one of {', '.join(LIFECYCLE_STAGES)}", field=f"{prefix}.lifecycle"
            )
        return cls(
            attributes=attributes,
            risk_tolerance=(
                None
                if tolerance is None
                else risk_number(tolerance, f"{prefix}.risk_tolerance", "C")
            ),
            products=frozenset(map(str, products)),
            lifecycle=lifecycle,
        )


def exclusion_reason(
    offer: Offer, customer: CustomerFacts, rule_check: RuleCheck | None, now: datetime
) -> str | None:
    """Why ``offer`` may not go to ``customer`` at ``now``, or None if it may."""
    if offer.retired:
        return RETIRED
    if offer.valid_from is not None and now < offer.valid_from:
        return NOT_YET_VALID
    if offer.valid_until is not None and now >= offer.valid_until:
        return EXPIRED
    risk = offer.risk
    if customer.risk_tolerance is None:
        if risk > 1:
            return RISK_PROFILE_MISSING
    elif risk > customer.risk_tolerance:
        return UNSUITABLE_RISK
    if offer.product in customer.products:
        return ALREADY_HOLDS_PRODUCT
    if offer.lifecycle_stages and customer.lifecycle not in offer.lifecycle_stages:
        return LIFECYCLE_MISMATCH
    if rule_check is not None:
        return rule_check(customer.attributes)
    return None


RISK_TOLERANCES: tuple[int | None, ...] = (None, 1, 2, 3, 4, 5)
"""Every value of ``CustomerFacts.risk_tolerance``."""
SETTLED_BY_THE_OFFER = frozenset({RETIRED, RISK_PROFILE_MISSING, UNSUITABLE_RISK})
_ANY_TIME = datetime(2000, 1, 1, tzinfo=UTC)


def settled_reason(offer: Offer, risk_tolerance: int | None) -> str | None:
    """``exclusion_reason`` for every customer of ``risk_tolerance`` at any time, where the
    offer and the tolerance alone settle it (retired, or outside the tolerance with no validity
    window to check first); None where the customer's other facts or the time may decide.
    The catalogue screens each channel's offers by it once per version, so a decision checks
    only the offers its customer may be suitable for."""
    if offer.valid_from is not None or offer.valid_until is not None:
        return None
    anyone = CustomerFacts({}, risk_tolerance, frozenset(), None)
    reason = exclusion_reason(offer, anyone, None, _ANY_TIME)
    return reason if reason in SETTLED_BY_THE_OFFER else None
