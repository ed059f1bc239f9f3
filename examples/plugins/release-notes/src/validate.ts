// Just enough JSON Schema to check command and RPC parameters strictly, as JSON (no "5"
// for an integer), and to show them in `rpc.discover`.

export interface Schema {
  type: "object" | "string" | "integer" | "array";
  description?: string;
  properties?: Record<string, Schema>;
  required?: string[];
  additionalProperties?: boolean;
  items?: Schema;
  enum?: string[];
  minLength?: number;
  default?: unknown;
}

/** Every problem of `value` against `schema`, each as `where: what`. */
export function problems(schema: Schema, value: unknown, where = "params"): string[] {
  const found: string[] = [];
  switch (schema.type) {
    case "object": {
      if (typeof value !== "object" || value === null || Array.isArray(value)) {
        return [`${where}: expected an object`];
      }
      const object = value as Record<string, unknown>;
      for (const name of schema.required ?? []) {
        if (!(name in object)) found.push(`${where}.${name}: required`);
      }
      for (const [name, item] of Object.entries(object)) {
        const property = schema.properties?.[name];
        if (property !== undefined) found.push(...problems(property, item, `${where}.${name}`));
        else if (schema.additionalProperties === false) found.push(`${where}.${name}: unexpected`);
      }
      return found;
    }
    case "array":
      if (!Array.isArray(value)) return [`${where}: expected an array`];
      if (schema.items !== undefined) {
        const items = schema.items;
        value.forEach((item, index) => found.push(...problems(items, item, `${where}[${index}]`)));
      }
      return found;
    case "integer":
      return Number.isInteger(value) ? [] : [`${where}: expected an integer`];
    case "string":
      if (typeof value !== "string") return [`${where}: expected a string`];
      if (schema.minLength !== undefined && value.length < schema.minLength) {
        return [`${where}: at least ${schema.minLength} character(s)`];
      }
      if (schema.enum !== undefined && !schema.enum.includes(value)) {
        return [`${where}: one of ${schema.enum.join(", ")}`];
      }
      return [];
  }
}
