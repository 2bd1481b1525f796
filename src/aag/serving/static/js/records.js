// Reading raw bronze rows: the record's own write time and one field's raw value.

/** The record's write time and the field it came from: {time, field} (time null if unknown).
 * The API parses it with the registry's ``record_time`` row of the object. */
export function recordTime(bronze) {
  return { time: bronze.record_time || null, field: bronze.record_time_field || null };
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
