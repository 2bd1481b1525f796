-- AAG Databricks setup, step 03 (generated from aag/databricks/job.py by
-- `python -m aag.databricks databricks/setup`; do not edit by hand).
-- Parameter :catalog is the Unity Catalog catalog AAG lives in.
CREATE TABLE IF NOT EXISTS IDENTIFIER(:catalog || '.config.attribute_name_registry') (
  source_system STRING,
  source_object STRING,
  source_field STRING,
  role STRING,
  entity_type STRING,
  attribute STRING,
  rel_type STRING,
  node_type STRING,
  normaliser STRING,
  confidence DOUBLE,
  event_time_field STRING,
  description STRING
);

INSERT OVERWRITE IDENTIFIER(:catalog || '.config.attribute_name_registry') VALUES
  ('salesforce', 'Contact', 'Id', 'record_id', 'customer', '', '', '', 'salesforce_id', NULL, '', 'Salesforce Contact Id'),
  ('salesforce', 'Contact', 'LastModifiedDate', 'record_time', 'customer', '', '', '', 'iso8601', NULL, '', 'Record-level write time (tier 2)'),
  ('salesforce', 'Contact', 'IsDeleted', 'deleted', 'customer', '', '', '', 'bool', NULL, '', 'Soft delete flag: removes the record\'s values'),
  ('salesforce', 'Contact', 'FirstName', 'attribute', 'customer', 'first_name', 'HAS_FIRST_NAME', 'first_name', 'text', 1.0, '', ''),
  ('salesforce', 'Contact', 'LastName', 'attribute', 'customer', 'last_name', 'HAS_LAST_NAME', 'last_name', 'text', 1.0, '', ''),
  ('salesforce', 'Contact', 'Email', 'attribute', 'customer', 'email', 'HAS_EMAIL', 'email', 'email', 1.0, '', ''),
  ('salesforce', 'Contact', 'Phone', 'attribute', 'customer', 'phone', 'HAS_PHONE', 'phone', 'phone', 1.0, '', ''),
  ('salesforce', 'Contact', 'MailingStreet', 'attribute', 'customer', 'street', 'HAS_STREET', 'street', 'text', 1.0, '', ''),
  ('salesforce', 'Contact', 'MailingCity', 'attribute', 'customer', 'city', 'HAS_CITY', 'city', 'text', 1.0, '', ''),
  ('salesforce', 'Contact', 'MailingPostalCode', 'attribute', 'customer', 'postal_code', 'HAS_POSTAL_CODE', 'postal_code', 'upper', 1.0, '', ''),
  ('salesforce', 'Contact', 'MailingCountry', 'attribute', 'customer', 'country', 'HAS_COUNTRY', 'country', 'country', 1.0, '', ''),
  ('salesforce', 'Contact', 'HasOptedOutOfEmail', 'attribute', 'customer', 'email_marketing_consent', 'HAS_EMAIL_MARKETING_CONSENT', 'consent', 'not_bool', 1.0, '', 'Opted out = no consent'),
  ('salesforce', 'Contact', 'AccountId', 'reference', 'customer', 'salesforce.Account', 'WORKS_AT', 'company', 'salesforce_id', 1.0, '', 'The Account the contact works for'),
  ('salesforce', 'ContactHistory', 'ContactId', 'record_id', 'customer', '', '', '', 'salesforce_id', NULL, '', 'The Contact whose field changed: the row is a field event of that Contact (Field is mapped by the Contact rows)'),
  ('salesforce', 'ContactHistory', 'CreatedDate', 'record_time', 'customer', '', '', '', 'iso8601', NULL, '', 'When the field changed (tier 1 for that one field)'),
  ('salesforce', 'Account', 'Id', 'record_id', 'company', '', '', '', 'salesforce_id', NULL, '', 'Salesforce Account Id'),
  ('salesforce', 'Account', 'LastModifiedDate', 'record_time', 'company', '', '', '', 'iso8601', NULL, '', 'Record-level write time (tier 2)'),
  ('salesforce', 'Account', 'IsDeleted', 'deleted', 'company', '', '', '', 'bool', NULL, '', 'Soft delete flag: removes the record\'s values'),
  ('salesforce', 'Account', 'Name', 'attribute', 'company', 'company_name', 'HAS_COMPANY_NAME', 'company_name', 'text', 1.0, '', ''),
  ('salesforce', 'Account', 'Website', 'attribute', 'company', 'website', 'HAS_WEBSITE', 'website', 'url', 1.0, '', 'Compared without scheme or trailing slash'),
  ('salesforce', 'Account', 'Industry', 'attribute', 'company', 'industry', 'HAS_INDUSTRY', 'industry', 'text', 1.0, '', ''),
  ('salesforce', 'Account', 'BillingCity', 'attribute', 'company', 'city', 'HAS_CITY', 'city', 'text', 1.0, '', ''),
  ('salesforce', 'Account', 'BillingCountry', 'attribute', 'company', 'country', 'HAS_COUNTRY', 'country', 'country', 1.0, '', ''),
  ('salesforce', 'Asset', 'Id', 'record_id', 'asset', '', '', '', 'salesforce_id', NULL, '', 'Salesforce Asset Id'),
  ('salesforce', 'Asset', 'LastModifiedDate', 'record_time', 'asset', '', '', '', 'iso8601', NULL, '', 'Record-level write time (tier 2)'),
  ('salesforce', 'Asset', 'IsDeleted', 'deleted', 'asset', '', '', '', 'bool', NULL, '', 'Soft delete flag: removes the record\'s values'),
  ('salesforce', 'Asset', 'Name', 'attribute', 'asset', 'asset_name', 'HAS_ASSET_NAME', 'asset_name', 'text', 1.0, '', ''),
  ('salesforce', 'Asset', 'SerialNumber', 'attribute', 'asset', 'serial_number', 'HAS_SERIAL_NUMBER', 'serial_number', 'text', 1.0, '', ''),
  ('salesforce', 'Asset', 'Status', 'attribute', 'asset', 'asset_status', 'HAS_ASSET_STATUS', 'asset_status', 'text', 1.0, '', ''),
  ('salesforce', 'Asset', 'AccountId', 'reference', 'asset', 'salesforce.Account', 'OWNED_BY', 'company', 'salesforce_id', 1.0, '', 'Keyed by the asset: company OWNS asset is this edge read backwards'),
  ('shopify', 'customers', 'id', 'record_id', 'customer', '', '', '', 'id', NULL, '', 'Shopify customer id'),
  ('shopify', 'customers', 'updated_at', 'record_time', 'customer', '', '', '', 'iso8601', NULL, '', 'Record-level write time (tier 2)'),
  ('shopify', 'customers', 'email', 'attribute', 'customer', 'email', 'HAS_EMAIL', 'email', 'email', 1.0, '', ''),
  ('shopify', 'customers', 'phone', 'attribute', 'customer', 'phone', 'HAS_PHONE', 'phone', 'phone', 1.0, '', ''),
  ('shopify', 'customers', 'first_name', 'attribute', 'customer', 'first_name', 'HAS_FIRST_NAME', 'first_name', 'text', 1.0, '', ''),
  ('shopify', 'customers', 'last_name', 'attribute', 'customer', 'last_name', 'HAS_LAST_NAME', 'last_name', 'text', 1.0, '', ''),
  ('shopify', 'customers', 'default_address_address1', 'attribute', 'customer', 'street', 'HAS_STREET', 'street', 'text', 1.0, '', ''),
  ('shopify', 'customers', 'default_address_city', 'attribute', 'customer', 'city', 'HAS_CITY', 'city', 'text', 1.0, '', ''),
  ('shopify', 'customers', 'default_address_zip', 'attribute', 'customer', 'postal_code', 'HAS_POSTAL_CODE', 'postal_code', 'upper', 1.0, '', ''),
  ('shopify', 'customers', 'default_address_country_code', 'attribute', 'customer', 'country', 'HAS_COUNTRY', 'country', 'country', 1.0, '', ''),
  ('shopify', 'customers', 'accepts_marketing', 'attribute', 'customer', 'email_marketing_consent', 'HAS_EMAIL_MARKETING_CONSENT', 'consent', 'bool', 1.0, 'accepts_marketing_updated_at', 'Field-level consent time (tier 1)'),
  ('zendesk', 'users', 'id', 'record_id', 'customer', '', '', '', 'id', NULL, '', 'Zendesk user id'),
  ('zendesk', 'users', 'updated_at', 'record_time', 'customer', '', '', '', 'iso8601', NULL, '', 'Record-level write time (tier 2)'),
  ('zendesk', 'users', 'external_id', 'same_as', 'customer', 'salesforce.Contact', '', '', 'salesforce_id', NULL, '', 'Holds the Salesforce Contact Id of the same person'),
  ('zendesk', 'users', 'name', 'attribute', 'customer', 'full_name', 'HAS_FULL_NAME', 'full_name', 'text', 1.0, '', 'Zendesk keeps one name field'),
  ('zendesk', 'users', 'email', 'attribute', 'customer', 'email', 'HAS_EMAIL', 'email', 'email', 1.0, '', ''),
  ('zendesk', 'users', 'phone', 'attribute', 'customer', 'phone', 'HAS_PHONE', 'phone', 'phone', 1.0, '', ''),
  ('sap', 'KNA1', 'KUNNR', 'record_id', 'customer', '', '', '', 'id', NULL, '', 'SAP customer number'),
  ('sap', 'KNA1', 'LAEDA', 'record_time', 'customer', '', '', '', 'yyyymmdd', NULL, '', 'Last change date (day precision); the SAP extractor falls back to ERDAT when blank'),
  ('sap', 'KNA1', 'LOEVM', 'deleted', 'customer', '', '', '', 'sap_flag', NULL, '', 'Deletion flag X removes the record\'s values'),
  ('sap', 'KNA1', 'NAME1', 'attribute', 'customer', 'full_name', 'HAS_FULL_NAME', 'full_name', 'text', 1.0, '', 'NAME1 and NAME2 joined with a space by the SAP extractor'),
  ('sap', 'KNA1', 'STRAS', 'attribute', 'customer', 'street', 'HAS_STREET', 'street', 'text', 1.0, '', ''),
  ('sap', 'KNA1', 'ORT01', 'attribute', 'customer', 'city', 'HAS_CITY', 'city', 'text', 1.0, '', ''),
  ('sap', 'KNA1', 'PSTLZ', 'attribute', 'customer', 'postal_code', 'HAS_POSTAL_CODE', 'postal_code', 'upper', 1.0, '', ''),
  ('sap', 'KNA1', 'LAND1', 'attribute', 'customer', 'country', 'HAS_COUNTRY', 'country', 'country', 1.0, '', ''),
  ('sap', 'KNA1', 'TELF1', 'attribute', 'customer', 'phone', 'HAS_PHONE', 'phone', 'phone', 1.0, '', 'Read in the region of LAND1'),
  ('sap', 'KNA1', 'ADR6.SMTP_ADDR', 'attribute', 'customer', 'email', 'HAS_EMAIL', 'email', 'email', 1.0, '', 'Joined from landed ADR6 rows (ADRNR = ADDRNUMBER) at the KNA1 row\'s time'),
  ('sap', 'ADR6', 'ADDRNUMBER', 'record_id', 'customer', '', '', '', 'id', NULL, '', 'Address number; ADR6 rows only land and are joined to KNA1'),
  ('sap', 'CDHDR', 'OBJECTID', 'record_id', 'customer', '', '', '', 'id', NULL, '', 'Change document header; lands for CDPOS to join (OBJECTCLAS DEBI: OBJECTID is the KUNNR; UDATE+UTIME is the change time)'),
  ('sap', 'CDPOS', 'OBJECTID', 'record_id', 'customer', '', '', '', 'id', NULL, '', 'Change document item of a KNA1 record (OBJECTCLAS DEBI and TABNAME KNA1; FNAME is mapped by the KNA1 rows; time from the landed CDHDR header)'),
  ('segment', 'identifies', 'user_id', 'record_id', 'customer', '', '', '', 'id', NULL, '', 'user_id; the Segment extractor uses anon:<anonymous_id> without one'),
  ('segment', 'identifies', 'timestamp', 'record_time', 'customer', '', '', '', 'iso8601', NULL, '', 'When the identify call happened: the time of every trait it carries'),
  ('segment', 'identifies', 'user_id', 'same_as', 'customer', 'salesforce.Contact', '', '', 'salesforce_id', NULL, '', 'Apps identify signed-in users by their Salesforce Contact Id'),
  ('segment', 'identifies', 'traits.email', 'attribute', 'customer', 'email', 'HAS_EMAIL', 'email', 'email', 1.0, '', ''),
  ('segment', 'identifies', 'traits.phone', 'attribute', 'customer', 'phone', 'HAS_PHONE', 'phone', 'phone', 1.0, '', ''),
  ('segment', 'identifies', 'traits.firstName', 'attribute', 'customer', 'first_name', 'HAS_FIRST_NAME', 'first_name', 'text', 1.0, '', ''),
  ('segment', 'identifies', 'traits.lastName', 'attribute', 'customer', 'last_name', 'HAS_LAST_NAME', 'last_name', 'text', 1.0, '', ''),
  ('segment', 'identifies', 'traits.name', 'attribute', 'customer', 'full_name', 'HAS_FULL_NAME', 'full_name', 'text', 1.0, '', ''),
  ('segment', 'identifies', 'traits.address.street', 'attribute', 'customer', 'street', 'HAS_STREET', 'street', 'text', 1.0, '', 'Segment\'s reserved address trait'),
  ('segment', 'identifies', 'traits.address.city', 'attribute', 'customer', 'city', 'HAS_CITY', 'city', 'text', 1.0, '', ''),
  ('segment', 'identifies', 'traits.address.postalCode', 'attribute', 'customer', 'postal_code', 'HAS_POSTAL_CODE', 'postal_code', 'upper', 1.0, '', ''),
  ('segment', 'identifies', 'traits.address.country', 'attribute', 'customer', 'country', 'HAS_COUNTRY', 'country', 'country', 1.0, '', ''),
  ('segment', 'identifies', 'traits.street', 'attribute', 'customer', 'street', 'HAS_STREET', 'street', 'text', 1.0, '', 'Flat form some apps send instead of address'),
  ('segment', 'identifies', 'traits.city', 'attribute', 'customer', 'city', 'HAS_CITY', 'city', 'text', 1.0, '', ''),
  ('segment', 'identifies', 'traits.postalCode', 'attribute', 'customer', 'postal_code', 'HAS_POSTAL_CODE', 'postal_code', 'upper', 1.0, '', ''),
  ('segment', 'identifies', 'traits.country', 'attribute', 'customer', 'country', 'HAS_COUNTRY', 'country', 'country', 1.0, '', '');

CREATE TABLE IF NOT EXISTS IDENTIFIER(:catalog || '.config.source_priority') (
  source_system STRING,
  priority INT,
  description STRING,
  future_tolerance_hours DOUBLE
);

INSERT OVERWRITE IDENTIFIER(:catalog || '.config.source_priority') VALUES
  ('salesforce', 1, 'CRM of record: sales and service edit contacts here', 24),
  ('sap', 2, 'ERP customer master (KNA1/ADR6)', 24),
  ('shopify', 3, 'Online shop: customers edit their own details at checkout', 24),
  ('zendesk', 4, 'Support desk: agents fix details during tickets', 24),
  ('segment', 5, 'Behavioural tracking: identify() traits from web and app', 24);

CREATE TABLE IF NOT EXISTS IDENTIFIER(:catalog || '.config.identity_rules') (
  entity_type STRING,
  rel_type STRING,
  max_records_per_source INT,
  description STRING
);

INSERT OVERWRITE IDENTIFIER(:catalog || '.config.identity_rules') VALUES
  ('customer', 'HAS_EMAIL', 2, 'Normalised email address (trimmed and lower-cased)'),
  ('customer', 'HAS_SOURCE_RECORD', 2, 'The record\'s own id: what other records\' same_as links point at'),
  ('customer', 'REFERS_TO_RECORD', 2, 'A same_as field naming another object\'s record (Zendesk external_id and Segment user_id hold a Salesforce Contact Id)');

CREATE TABLE IF NOT EXISTS IDENTIFIER(:catalog || '.config.identity_blocklist') (
  node_type STRING,
  value STRING,
  reason STRING
);

INSERT OVERWRITE IDENTIFIER(:catalog || '.config.identity_blocklist') VALUES
  ('email', 'test@test.com', 'Placeholder typed into forms'),
  ('email', 'test@example.com', 'Placeholder typed into forms'),
  ('email', 'noreply@example.com', 'Placeholder typed into forms'),
  ('email', 'no-reply@example.com', 'Placeholder typed into forms'),
  ('email', 'none@none.com', 'Placeholder typed into forms'),
  ('email', 'na@na.com', 'Placeholder typed into forms'),
  ('email', 'unknown@unknown.com', 'Placeholder typed into forms'),
  ('phone', '+10000000000', 'Placeholder typed into forms');

CREATE TABLE IF NOT EXISTS IDENTIFIER(:catalog || '.config.survivorship') (
  attribute STRING,
  strategy STRING,
  source_order STRING,
  allowed_sources STRING,
  description STRING
);

INSERT OVERWRITE IDENTIFIER(:catalog || '.config.survivorship') VALUES
  ('email', 'latest', '', '', 'The rule of SPEC §4: the latest change of the field wins'),
  ('phone', 'latest', '', '', 'The rule of SPEC §4: the latest change of the field wins'),
  ('first_name', 'latest', '', '', 'The rule of SPEC §4: the latest change of the field wins'),
  ('last_name', 'latest', '', '', 'The rule of SPEC §4: the latest change of the field wins'),
  ('full_name', 'latest', '', '', 'The rule of SPEC §4: the latest change of the field wins'),
  ('street', 'latest', '', '', 'The rule of SPEC §4: the latest change of the field wins'),
  ('city', 'latest', '', '', 'The rule of SPEC §4: the latest change of the field wins'),
  ('postal_code', 'latest', '', '', 'The rule of SPEC §4: the latest change of the field wins'),
  ('country', 'latest', '', '', 'The rule of SPEC §4: the latest change of the field wins'),
  ('email_marketing_consent', 'latest', '', '', 'Consent follows the customer\'s latest decision in any system');

CREATE TABLE IF NOT EXISTS IDENTIFIER(:catalog || '.config.landing_shapes') (
  source_system STRING,
  source_object STRING,
  shape STRING,
  landed_column STRING,
  source_field STRING,
  description STRING
);

INSERT OVERWRITE IDENTIFIER(:catalog || '.config.landing_shapes') VALUES
  ('salesforce', 'Contact', 'fivetran', 'id', 'Id', 'Fivetran\'s Salesforce connector: API field names in snake_case'),
  ('salesforce', 'Contact', 'fivetran', 'last_modified_date', 'LastModifiedDate', 'A TIMESTAMP column (the API gives ISO 8601 text)'),
  ('salesforce', 'Contact', 'fivetran', 'is_deleted', 'IsDeleted', ''),
  ('salesforce', 'Contact', 'fivetran', 'first_name', 'FirstName', ''),
  ('salesforce', 'Contact', 'fivetran', 'last_name', 'LastName', ''),
  ('salesforce', 'Contact', 'fivetran', 'email', 'Email', ''),
  ('salesforce', 'Contact', 'fivetran', 'phone', 'Phone', ''),
  ('salesforce', 'Contact', 'fivetran', 'mailing_street', 'MailingStreet', ''),
  ('salesforce', 'Contact', 'fivetran', 'mailing_city', 'MailingCity', ''),
  ('salesforce', 'Contact', 'fivetran', 'mailing_postal_code', 'MailingPostalCode', ''),
  ('salesforce', 'Contact', 'fivetran', 'mailing_country', 'MailingCountry', ''),
  ('salesforce', 'Contact', 'fivetran', 'has_opted_out_of_email', 'HasOptedOutOfEmail', ''),
  ('salesforce', 'Contact', 'fivetran', 'account_id', 'AccountId', ''),
  ('salesforce', 'Account', 'fivetran', 'id', 'Id', 'Fivetran\'s Salesforce connector: API field names in snake_case'),
  ('salesforce', 'Account', 'fivetran', 'last_modified_date', 'LastModifiedDate', ''),
  ('salesforce', 'Account', 'fivetran', 'is_deleted', 'IsDeleted', ''),
  ('salesforce', 'Account', 'fivetran', 'name', 'Name', ''),
  ('salesforce', 'Account', 'fivetran', 'website', 'Website', ''),
  ('salesforce', 'Account', 'fivetran', 'industry', 'Industry', ''),
  ('salesforce', 'Account', 'fivetran', 'billing_city', 'BillingCity', ''),
  ('salesforce', 'Account', 'fivetran', 'billing_country', 'BillingCountry', ''),
  ('salesforce', 'Asset', 'fivetran', 'id', 'Id', 'Fivetran\'s Salesforce connector: API field names in snake_case'),
  ('salesforce', 'Asset', 'fivetran', 'last_modified_date', 'LastModifiedDate', ''),
  ('salesforce', 'Asset', 'fivetran', 'is_deleted', 'IsDeleted', ''),
  ('salesforce', 'Asset', 'fivetran', 'name', 'Name', ''),
  ('salesforce', 'Asset', 'fivetran', 'serial_number', 'SerialNumber', ''),
  ('salesforce', 'Asset', 'fivetran', 'status', 'Status', ''),
  ('salesforce', 'Asset', 'fivetran', 'account_id', 'AccountId', ''),
  ('segment', 'identifies', 'segment_warehouse', 'id', 'message_id', 'Segment\'s warehouse identifies table: the message id is the id column'),
  ('segment', 'identifies', 'segment_warehouse', 'email', 'traits.email', 'Each trait is its own snake_case column; nested objects are flattened with _'),
  ('segment', 'identifies', 'segment_warehouse', 'phone', 'traits.phone', ''),
  ('segment', 'identifies', 'segment_warehouse', 'first_name', 'traits.firstName', ''),
  ('segment', 'identifies', 'segment_warehouse', 'last_name', 'traits.lastName', ''),
  ('segment', 'identifies', 'segment_warehouse', 'name', 'traits.name', ''),
  ('segment', 'identifies', 'segment_warehouse', 'address_street', 'traits.address.street', ''),
  ('segment', 'identifies', 'segment_warehouse', 'address_city', 'traits.address.city', ''),
  ('segment', 'identifies', 'segment_warehouse', 'address_postal_code', 'traits.address.postalCode', ''),
  ('segment', 'identifies', 'segment_warehouse', 'address_country', 'traits.address.country', ''),
  ('segment', 'identifies', 'segment_warehouse', 'street', 'traits.street', ''),
  ('segment', 'identifies', 'segment_warehouse', 'city', 'traits.city', ''),
  ('segment', 'identifies', 'segment_warehouse', 'postal_code', 'traits.postalCode', ''),
  ('segment', 'identifies', 'segment_warehouse', 'country', 'traits.country', ''),
  ('shopify', 'customers', 'fivetran', 'id', 'id', 'Fivetran\'s Shopify customer table: the API\'s snake_case names, typed columns; the default address is in its customer_address table (by default_address_id), which no shape joins, so the default_address_* fields stay empty'),
  ('shopify', 'customers', 'fivetran', 'updated_at', 'updated_at', 'A TIMESTAMP column (the API gives ISO 8601 text with the shop\'s offset)'),
  ('shopify', 'customers', 'fivetran', 'email', 'email', ''),
  ('shopify', 'customers', 'fivetran', 'phone', 'phone', ''),
  ('shopify', 'customers', 'fivetran', 'first_name', 'first_name', ''),
  ('shopify', 'customers', 'fivetran', 'last_name', 'last_name', ''),
  ('shopify', 'customers', 'fivetran', 'accepts_marketing', 'accepts_marketing', 'A BOOLEAN column'),
  ('shopify', 'customers', 'fivetran', 'accepts_marketing_updated_at', 'accepts_marketing_updated_at', ''),
  ('zendesk', 'users', 'fivetran', 'id', 'id', 'Fivetran\'s Zendesk Support user table: the API\'s names, typed columns'),
  ('zendesk', 'users', 'fivetran', 'updated_at', 'updated_at', ''),
  ('zendesk', 'users', 'fivetran', 'external_id', 'external_id', ''),
  ('zendesk', 'users', 'fivetran', 'name', 'name', ''),
  ('zendesk', 'users', 'fivetran', 'email', 'email', ''),
  ('zendesk', 'users', 'fivetran', 'phone', 'phone', '');
