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
    /// The value of this type written in place.
    Inline(u64),
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

/// An element of the metadata tree: its name and attributes as indices into the string table.
struct Element {
    name: u32,
    attributes: Vec<(u32, u32)>,
    children: Vec<Element>,
}

fn element(r: &mut Reader<'_>, strings: usize, depth: usize) -> Result<Element> {
    if depth > MAX_DEPTH {
        return Err(corrupt("the metadata nests too deep"));
    }
    let index = |r: &mut Reader<'_>| -> Result<u32> {
        let i = r.int()?;
        u32::try_from(i).ok().filter(|i| (*i as usize) < strings).ok_or_else(|| corrupt(format!("the metadata string {i}")))
    };
    let name = index(r)?;
    let n = r.int()?;
    let mut attributes = Vec::new();
    for _ in 0..n {
        attributes.push((index(r)?, index(r)?));
    }
    let n = r.int()?;
    let mut children = Vec::new();
    for _ in 0..n {
        children.push(element(r, strings, depth + 1)?);
    }
    Ok(Element { name, attributes, children })
}

impl Metadata {
    /// Read the metadata event's body (after its size and type).
    pub(super) fn parse(r: &mut Reader<'_>) -> Result<Metadata> {
        r.long()?; // start
        r.long()?; // duration
        r.long()?; // metadata id
        let n = r.int()?;
        let mut strings = Vec::new();
        for _ in 0..n {
            match r.string()? {
                Str::Inline(s) => strings.push(s.into_owned()),
                Str::Pool(_) => return Err(corrupt("a metadata string refers to a pool")),
            }
        }
        let root = element(r, strings.len(), 0)?;
        let s = |i: u32| strings[i as usize].as_str();
        let attr = |e: &Element, key: &str| e.attributes.iter().find(|(k, _)| s(*k) == key).map(|(_, v)| s(*v));
        let mut classes = Vec::new();
        let mut field_types: Vec<Vec<(String, u64, bool, bool)>> = Vec::new();
        for meta in root.children.iter().filter(|e| s(e.name) == "metadata") {
            for class in meta.children.iter().filter(|e| s(e.name) == "class") {
                let name = attr(class, "name").unwrap_or_default().to_string();
                let id = attr(class, "id").and_then(|v| v.parse().ok()).ok_or_else(|| corrupt(format!("the class {name:?} has no id")))?;
                let mut fields = Vec::new();
                for f in class.children.iter().filter(|e| s(e.name) == "field") {
                    let ty: u64 =
                        attr(f, "class").and_then(|v| v.parse().ok()).ok_or_else(|| corrupt(format!("a field of {name:?} has no type")))?;
                    fields.push((
                        attr(f, "name").unwrap_or_default().to_string(),
                        ty,
                        attr(f, "constantPool") == Some("true"),
                        attr(f, "dimension").is_some_and(|d| d != "0"),
                    ));
                }
                classes.push(Class { id, prim: Prim::of(&name), name, fields: Vec::new() });
                field_types.push(fields);
            }
        }
        let by_id: HashMap<u64, usize, ahash::RandomState> = classes.iter().enumerate().map(|(i, c)| (c.id, i)).collect();
        for (class, fields) in classes.iter_mut().zip(field_types) {
            for (name, ty, pooled, array) in fields {
                if !by_id.contains_key(&ty) {
                    return Err(corrupt(format!("the field {name:?} of {:?} has the unknown type {ty}", class.name)));
                }
                let kind = if pooled { Kind::Pool } else { Kind::Inline(ty) };
                class.fields.push(Field { name, ty: FieldType { kind, array } });
            }
        }
        // Inline primitives are read as such.
        for i in 0..classes.len() {
            for f in 0..classes[i].fields.len() {
                if let Kind::Inline(ty) = classes[i].fields[f].ty.kind {
                    if let Some(p) = classes[by_id[&ty]].prim {
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

    pub(super) fn class(&self, id: u64) -> Option<&Class> {
        self.by_id.get(&id).map(|i| &self.classes[*i])
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
        let frame = self.class(frame_ty)?;
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

    /// Step over one value of type `id`.
    pub(super) fn skip_value(&self, r: &mut Reader<'_>, id: u64, depth: usize) -> Result<()> {
        if depth > MAX_DEPTH {
            return Err(corrupt("values nest too deep"));
        }
        let class = self.class(id).ok_or_else(|| corrupt(format!("a value of the unknown type {id}")))?;
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
