// jsonschema.h — JSON Schema (draft 4 to 2020-12) compiled into the grammar IR.
//
// Enforced: type (one or a list), enum, const, properties, required, additionalProperties
// (false, true, or a schema: extra keys are then any string but the declared names), anyOf,
// oneOf (exact: the union of the branches once no value derived from one branch can validate
// against another, proven by value kinds, enum/const sets, or for objects a discriminating or
// required property, a branch being narrowed to leave out a property another requires; else an
// error naming the two branches), allOf (merged: properties, required, types and
// numeric/length bounds intersect), $ref to "#", "#/$defs/...", "#/definitions/..." or any local
// JSON pointer (recursion included), items (schema or, before 2020-12, a tuple), prefixItems,
// additionalItems, minItems, maxItems, minLength, maxLength, pattern (JavaScript regex, unanchored
// unless ^/$), format (date, time, date-time, uuid, email, ipv4, hostname, uri, byte and the
// unconstrained ones; non-standard format names validate nothing and are ignored; on numbers
// int32 (a 32-bit integer) and int64 (an integer), as ajv-formats checks them), integer
// minimum/maximum/exclusive*, number bounds (as integers, plus
// fractions when the lower bound is >= 0), multipleOf 1 on integers, minProperties <= the
// required count, boolean schemas.
// Anything else that constrains values (not, if/then/else, patternProperties, propertyNames,
// uniqueItems, contains, dependentRequired, dependentSchemas, unevaluated*, other multipleOf,
// pattern with length bounds ...) is an error naming the keyword and where it is (a JSON pointer),
// unless the schema opts out at its root with llguidance's "x-guidance": {"lenient": true}: those
// keywords are then ignored (the output may violate them) and oneOf is compiled as anyOf.
// Annotations (title, description, default, examples, ...) and unknown keywords are ignored.
// Generation shape: declared properties in declaration order; whitespace bounded to "" | " " |
// "\n" + at most 16 spaces between tokens; numbers at most 16 integer digits, 2 exponent digits;
// free values (true / {} schemas) nest at most JSON_MAX_FREE_DEPTH deep.
// Bounds: schema nesting JSON_MAX_DEPTH, the grammar budget of the caller's gram.
#ifndef TV_STRUCTURED_JSONSCHEMA_H
#define TV_STRUCTURED_JSONSCHEMA_H

#include <stddef.h>

#include "structured/grammar.h"

#define JSON_MAX_DEPTH 64
#define JSON_MAX_FREE_DEPTH 4

// Compiles the schema text (len bytes of JSON) into g and sets g->root. TV_ERR_INVALID with the
// byte offset for malformed JSON, with the keyword and its JSON pointer for what is not enforced.
tv_status jsonschema_compile(gram *g, const char *schema, size_t len, tv_error *err);
// Any JSON object (response_format json_object).
tv_status jsonschema_any_object(gram *g, tv_error *err);

#endif
