//! A chunk's metadata event: every type (events, pools, inline structures) with its fields in
//! the order their values are written; how to step over any value, and where the fields stacks
//! need are.

use std::collections::HashMap;

use super::reader::{Reader, Str};
use super::{corrupt, Result, MAX_DEPTH};

/// The primitive types, as the metadata names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Prim {
    Bool,
    Byte,
    Short,
    Int,
    Long,
    Char,
    Float,
    Double,
    Str,
}

impl Prim {
    fn of(name: &str) -> Option<Prim> {
        Some(match name {
            "boolean" => Prim::Bool,
            "byte" => Prim::Byte,
            "short" => Prim::Short,
            "int" => Prim::Int,
            "long" => Prim::Long,
            "char" => Prim::Char,
            "float" => Prim::Float,
            "double" => Prim::Double,
            "java.lang.String" => Prim::Str,
            _ => return None,
        })
    }
}

/// How a field's value is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Prim(Prim),
    /// A key of the constant pool of this type.
    Pool,
    /// The value of this type (an index into the metadata's classes) written in place.
    Inline(usize),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FieldType {
    pub(super) kind: Kind,
    pub(super) array: bool,
}

#[derive(Debug)]
pub(super) struct Field {
    pub(super) name: String,
    pub(super) ty: FieldType,
}

#[derive(Debug)]
pub(super) struct Class {
    pub(super) id: u64,
    pub(super) name: String,
    pub(super) fields: Vec<Field>,
    /// Its values are themselves a primitive (`java.lang.String` pools).
    prim: Option<Prim>,
}

/// Where the fields of stack traces are.
#[derive(Debug)]
pub(super) struct StackLayout {
    pub(super) trace_fields: Vec<FieldType>,
    pub(super) truncated: Option<usize>,
    pub(super) frames: Option<usize>,
    pub(super) frame_fields: Vec<FieldType>,
    pub(super) method: Option<usize>,
    pub(super) line: Option<usize>,
    pub(super) kind: Option<usize>,
}

/// Where the fields of a pooled type (methods, classes) are.
#[derive(Debug)]
pub(super) struct Layout {
    pub(super) fields: Vec<FieldType>,
    pub(super) class: Option<usize>,
    pub(super) name: Option<usize>,
    pub(super) modifiers: Option<usize>,
}

#[derive(Debug)]
pub(super) struct Metadata {
    classes: Vec<Class>,
    by_id: HashMap<u64, usize, ahash::RandomState>,
    pub(super) stack_layout: Option<StackLayout>,
    pub(super) method_layout: Option<Layout>,
    pub(super) class_layout: Option<Layout>,
}

/// The metadata tree, flat: each element's name, parent and attributes (indices into the
/// string table), in document order; nothing allocated per element.
#[derive(Default)]
struct Tree {
    /// (name, parent element or `u32::MAX`, first attribute, attributes).
    elements: Vec<(u32, u32, u32, u32)>,
    attributes: Vec<(u32, u32)>,
}

fn element(r: &mut Reader<'_>, strings: usize, parent: u32, depth: usize, tree: &mut Tree) -> Result<()> {
    if depth > MAX_DEPTH {
        return Err(corrupt("the metadata nests too deep"));
    }
    let index = |r: &mut Reader<'_>| -> Result<u32> {
        let i = r.int()?;
        u32::try_from(i).ok().filter(|i| (*i as usize) < strings).ok_or_else(|| corrupt(format!("the metadata string {i}")))
    };
    let name = index(r)?;
    let n = r.int()?;
    let first = tree.attributes.len() as u32;
    for _ in 0..n {
        let pair = (index(r)?, index(r)?);
        tree.attributes.push(pair);
    }
    let me = tree.elements.len() as u32;
    tree.elements.push((name, parent, first, tree.attributes.len() as u32 - first));
    let n = r.int()?;
    for _ in 0..n {
        element(r, strings, me, depth + 1, tree)?;
    }
    Ok(())
}

impl Metadata {
    /// Read the metadata event's body (after its size and type).
    pub(super) fn parse(r: &mut Reader<'_>) -> Result<Metadata> {
        r.long()?; // start
        r.long()?; // duration
        r.long()?; // metadata id
        let n = r.int()?;
        let mut strings: Vec<std::borrow::Cow<'_, str>> = Vec::new();
        for _ in 0..n {
            match r.string()? {
                Str::Inline(s) => strings.push(s),
                Str::Pool(_) => return Err(corrupt("a metadata string refers to a pool")),
            }
        }
        let mut tree = Tree::default();
        element(r, strings.len(), u32::MAX, 0, &mut tree)?;
        let s = |i: u32| strings[i as usize].as_ref();
        let attr = |e: usize, key: &str| -> Option<&str> {
            let (_, _, first, n) = tree.elements[e];
            tree.attributes[first as usize..(first + n) as usize].iter().find(|(k, _)| s(*k) == key).map(|(_, v)| s(*v))
        };
        let named = |e: u32, what: &str| e != u32::MAX && s(tree.elements[e as usize].0) == what;
        let mut classes = Vec::new();
        let mut field_types: Vec<Vec<(String, u64, bool, bool)>> = Vec::new();
        // Element index → its class's position, for the fields that follow it.
        let mut class_at: HashMap<u32, usize, ahash::RandomState> = HashMap::default();
        for (e, &(name, parent, _, _)) in tree.elements.iter().enumerate() {
            match s(name) {
                "class" if named(parent, "metadata") && named(tree.elements[parent as usize].1, "root") => {
                    let cname = attr(e, "name").unwrap_or_default().to_string();
                    let id = attr(e, "id").and_then(|v| v.parse().ok()).ok_or_else(|| corrupt(format!("the class {cname:?} has no id")))?;
                    class_at.insert(e as u32, classes.len());
                    classes.push(Class { id, prim: Prim::of(&cname), name: cname, fields: Vec::new() });
                    field_types.push(Vec::new());
                }
                "field" => {
                    let Some(&c) = class_at.get(&parent) else { continue };
                    let ty: u64 = attr(e, "class")
                        .and_then(|v| v.parse().ok())
                        .ok_or_else(|| corrupt(format!("a field of {:?} has no type", classes[c].name)))?;
                    field_types[c].push((
                        attr(e, "name").unwrap_or_default().to_string(),
                        ty,
                        attr(e, "constantPool") == Some("true"),
                        attr(e, "dimension").is_some_and(|d| d != "0"),
                    ));
                }
                _ => {}
            }
        }
        let by_id: HashMap<u64, usize, ahash::RandomState> = classes.iter().enumerate().map(|(i, c)| (c.id, i)).collect();
        for (class, fields) in classes.iter_mut().zip(field_types) {
            for (name, ty, pooled, array) in fields {
                if !by_id.contains_key(&ty) {
                    return Err(corrupt(format!("the field {name:?} of {:?} has the unknown type {ty}", class.name)));
                }
                let kind = if pooled { Kind::Pool } else { Kind::Inline(by_id[&ty]) };
                class.fields.push(Field { name, ty: FieldType { kind, array } });
            }
        }
        // Inline primitives are read as such.
        for i in 0..classes.len() {
            for f in 0..classes[i].fields.len() {
                if let Kind::Inline(ty) = classes[i].fields[f].ty.kind {
                    if let Some(p) = classes[ty].prim {
                        classes[i].fields[f].ty.kind = Kind::Prim(p);
                    }
                }
            }
        }
        let mut meta = Metadata { classes, by_id, stack_layout: None, method_layout: None, class_layout: None };
        meta.stack_layout = meta.stack_layout();
        meta.method_layout = meta.layout("jdk.types.Method", "type");
        meta.class_layout = meta.layout("java.lang.Class", "");
        Ok(meta)
    }

    /// The class at `index` ([`Metadata::index_of`]).
    pub(super) fn class_at(&self, index: usize) -> &Class {
        &self.classes[index]
    }

    pub(super) fn classes(&self) -> impl Iterator<Item = &Class> {
        self.classes.iter()
    }

    fn named(&self, name: &str) -> Option<&Class> {
        self.classes.iter().find(|c| c.name == name)
    }

    fn stack_layout(&self) -> Option<StackLayout> {
        let trace = self.named("jdk.types.StackTrace")?;
        let pos = |c: &Class, n: &str| c.fields.iter().position(|f| f.name == n);
        let frames = pos(trace, "frames")?;
        let Kind::Inline(frame_ty) = trace.fields[frames].ty.kind else { return None };
        let frame = &self.classes[frame_ty];
        Some(StackLayout {
            trace_fields: trace.fields.iter().map(|f| f.ty).collect(),
            truncated: pos(trace, "truncated").filter(|i| trace.fields[*i].ty.kind == Kind::Prim(Prim::Bool)),
            frames: Some(frames).filter(|i| trace.fields[*i].ty.array),
            frame_fields: frame.fields.iter().map(|f| f.ty).collect(),
            method: pos(frame, "method"),
            line: pos(frame, "lineNumber"),
            kind: pos(frame, "type").filter(|i| frame.fields[*i].ty.kind == Kind::Pool),
        })
    }

    fn layout(&self, name: &str, class_field: &str) -> Option<Layout> {
        let c = self.named(name)?;
        let pos = |n: &str| c.fields.iter().position(|f| f.name == n && !f.ty.array);
        Some(Layout {
            fields: c.fields.iter().map(|f| f.ty).collect(),
            class: pos(class_field),
            name: pos("name"),
            modifiers: pos("modifiers"),
        })
    }

    /// The position of type `id` among the classes ([`Metadata::skip_value`]).
    pub(super) fn index_of(&self, id: u64) -> Option<usize> {
        self.by_id.get(&id).copied()
    }

    /// Step over one value of the class at `index`.
    pub(super) fn skip_value(&self, r: &mut Reader<'_>, index: usize, depth: usize) -> Result<()> {
        if depth > MAX_DEPTH {
            return Err(corrupt("values nest too deep"));
        }
        let class = &self.classes[index];
        if let Some(p) = class.prim {
            return skip_prim(r, p);
        }
        for f in &class.fields {
            self.skip_field(r, f.ty, depth + 1)?;
        }
        Ok(())
    }

    /// Step over one field's value (an array's every element).
    pub(super) fn skip_field(&self, r: &mut Reader<'_>, ty: FieldType, depth: usize) -> Result<()> {
        let n = if ty.array { r.len()? } else { 1 };
        for _ in 0..n {
            match ty.kind {
                Kind::Prim(p) => skip_prim(r, p)?,
                Kind::Pool => {
                    r.long()?;
                }
                Kind::Inline(id) => self.skip_value(r, id, depth + 1)?,
            }
        }
        Ok(())
    }

    /// A whole-number field's value (a pool key for pooled fields).
    pub(super) fn number(&self, r: &mut Reader<'_>, ty: FieldType) -> Result<u64> {
        if ty.array {
            return Err(corrupt("an array where a number was expected"));
        }
        match ty.kind {
            Kind::Pool => r.long(),
            Kind::Prim(Prim::Bool | Prim::Byte) => r.byte().map(u64::from),
            Kind::Prim(Prim::Short) => r.short(),
            Kind::Prim(Prim::Int) => r.int(),
            Kind::Prim(Prim::Long) => r.long(),
            Kind::Prim(Prim::Char) => r.char(),
            Kind::Prim(Prim::Float) => Ok(f32::from_bits(u32::from_be_bytes(r.take(4)?.try_into().unwrap_or([0; 4]))).max(0.0) as u64),
            Kind::Prim(Prim::Double) => Ok(f64::from_bits(u64::from_be_bytes(r.take(8)?.try_into().unwrap_or([0; 8]))).max(0.0) as u64),
            Kind::Prim(Prim::Str) | Kind::Inline(_) => Err(corrupt("a structure where a number was expected")),
        }
    }
}

fn skip_prim(r: &mut Reader<'_>, p: Prim) -> Result<()> {
    match p {
        Prim::Bool | Prim::Byte => {
            r.byte()?;
        }
        Prim::Short => {
            r.short()?;
        }
        Prim::Int => {
            r.int()?;
        }
        Prim::Long => {
            r.long()?;
        }
        Prim::Char => {
            r.char()?;
        }
        Prim::Float => {
            r.take(4)?;
        }
        Prim::Double => {
            r.take(8)?;
        }
        Prim::Str => r.skip_string()?,
    }
    Ok(())
}
