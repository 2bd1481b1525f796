// Reading raw bronze rows: the record's own write time and one field's raw value.

// Where each source object keeps its record-level write time (the registry's
// ``record_time`` rows). Used until the bronze endpoint returns the parsed time itself.
const RECORD_TIME_FIELDS = {
  "salesforce.Contact": "LastModifiedDate",
  "salesforce.Account": "LastModifiedDate",
  "salesforce.Asset": "LastModifiedDate",
  "salesforce.ContactHistory": "CreatedDate",
  "shopify.customers": "updated_at",
  "zendesk.users": "updated_at",
  "sap.KNA1": "LAEDA",
  "segment.identifies": "timestamp",
};
const FALLBACK_TIME_FIELDS = ["LastModifiedDate", "updated_at", "timestamp", "LAEDA"];

/** A source's time text as ISO 8601 (Salesforce "+0000", SAP "yyyymmdd"), or null. */
export function isoOf(text) {
  if (text === null || text === undefined || text === "") return null;
  const str = String(text).trim();
  if (/^\d{8}$/.test(str)) return `${str.slice(0, 4)}-${str.slice(4, 6)}-${str.slice(6, 8)}T00:00:00Z`;
  const fixed = str.replace(/([+-]\d\d)(\d\d)$/, "$1:$2");
  return Number.isNaN(Date.parse(fixed)) ? null : new Date(Date.parse(fixed)).toISOString();
}

/** The record's write time and the field it came from: {time, field} (time null if unknown). */
export function recordTime(bronze) {
  if (bronze.record_time) return { time: bronze.record_time, field: bronze.record_time_field || "record time" };
  const row = bronze.row || {};
  const known = RECORD_TIME_FIELDS[`${bronze.source_system}.${bronze.source_object}`];
  for (const field of known ? [known, "ERDAT"] : FALLBACK_TIME_FIELDS) {
    const time = isoOf(row[field]);
    if (time) return { time, field };
  }
  return { time: null, field: null };
}

/**
 * The raw value of a source field in a landed row: a key, a dotted path into nested
 * objects (Segment "traits.phone"), or "OBJECT.FIELD" of another object (SAP "ADR6.SMTP_ADDR").
 * Returns {found, value}.
 */
export function fieldValue(bronze, field) {
  const row = bronze.row || {};
  if (Object.prototype.hasOwnProperty.call(row, field)) return { found: true, value: row[field] };
  const parts = String(field).split(".");
  let cur = row;
  for (const part of parts) {
    if (cur === null || typeof cur !== "object" || !Object.prototype.hasOwnProperty.call(cur, part)) {
      cur = undefined;
      break;
    }
    cur = cur[part];
  }
  if (cur !== undefined) return { found: true, value: cur };
  if (parts.length === 2 && parts[0] === bronze.source_object && Object.prototype.hasOwnProperty.call(row, parts[1])) {
    return { found: true, value: row[parts[1]] };
  }
  return { found: false, value: undefined };
}
