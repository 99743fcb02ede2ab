"""The entity types every PII evaluation set labels as personal data (shared by the scripts here)."""

TARGET_TYPES = [
    "PERSON",
    "STREET_ADDRESS",
    "POSTCODE",
    "PHONE_NUMBER",
    "EMAIL_ADDRESS",
    "CREDIT_CARD",
    "IBAN_CODE",
    "BANK_ACCOUNT",
    "NATIONAL_ID",
    "IP_ADDRESS",
    "DATE_OF_BIRTH",
]
