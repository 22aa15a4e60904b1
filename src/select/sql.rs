//! The SQL of `--filter`, `--with` and `--sql`, checked before polars sees it.
//!
//! Rows are selected batch by batch, so only row-wise SQL makes sense: anything
//! that needs the whole table (aggregations, window functions, joins, sorts,
//! DISTINCT, LIMIT, subqueries) is refused here with the reason and what to do
//! instead. The same parse gives the columns a query reads (projection), and the
//! bounds check that lets whole files and row groups be skipped (pruning).

use std::ops::ControlFlow;

use anyhow::{bail, Result};
use sqlparser::ast::{
    visit_expressions, BinaryOperator, Expr, GroupByExpr, Ident, Query, SelectItem, SetExpr,
    Spanned, Statement, TableFactor,
};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::Token;

/// The table name a `--sql` query reads.
pub const TABLE: &str = "input";

/// Aggregate and window functions of polars SQL, and `unnest`, which changes the
/// row count: none of them is row-wise.
const NOT_ROW_WISE: &[&str] = &[
    "avg",
    "corr",
    "count",
    "covar_pop",
    "covar_samp",
    "covar",
    "first",
    "last",
    "max",
    "median",
    "min",
    "quantile_cont",
    "quantile_disc",
    "stdev",
    "stddev",
    "stdev_samp",
    "stddev_samp",
    "string_agg",
    "listagg",
    "group_concat",
    "sum",
    "total",
    "var",
    "variance",
    "var_samp",
    "array_agg",
    "unnest",
    "dense_rank",
    "first_value",
    "last_value",
    "lag",
    "lead",
    "rank",
    "row_number",
];

/// Where in the text an expression starts, for messages.
fn at(e: &impl Spanned) -> String {
    at_span(e.span())
}

fn at_span(span: sqlparser::tokenizer::Span) -> String {
    let start = span.start;
    if start.line == 0 {
        String::new()
    } else {
        format!(" at line {}, column {}", start.line, start.column)
    }
}

fn parse_error(what: &str, text: &str, e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("{what} {text:?} is not valid SQL: {e}")
}

/// Parses one SQL expression (`--filter`, the right side of `--with`) and checks
/// that it is row-wise.
pub fn parse_expr(what: &str, text: &str) -> Result<Expr> {
    let dialect = GenericDialect {};
    let mut parser = Parser::new(&dialect)
        .try_with_sql(text)
        .map_err(|e| parse_error(what, text, e))?;
    let expr = parser
        .parse_expr()
        .map_err(|e| parse_error(what, text, e))?;
    let next = parser.peek_token();
    if next.token != Token::EOF {
        bail!(
            "{what} {text:?}: unexpected `{}` at line {}, column {}; give one expression",
            next.token,
            next.span.start.line,
            next.span.start.column
        );
    }
    row_wise(what, text, &expr)?;
    Ok(expr)
}

/// Refuses what is not row-wise in an expression (or a whole query).
fn row_wise<V: sqlparser::ast::Visit>(what: &str, text: &str, v: &V) -> Result<()> {
    let found = visit_expressions(v, |e: &Expr| {
        let why = match e {
            Expr::Function(f) => {
                let name = f.name.to_string().to_ascii_lowercase();
                if f.over.is_some() {
                    Some(format!("the window function {}", f.name))
                } else if NOT_ROW_WISE.contains(&name.as_str()) {
                    Some(format!("{} (an aggregation)", f.name))
                } else {
                    None
                }
            }
            Expr::Subquery(_) | Expr::Exists { .. } | Expr::InSubquery { .. } => {
                Some("a subquery".to_string())
            }
            _ => None,
        };
        match why {
            Some(why) => ControlFlow::Break(format!("{why}{}", at(e))),
            None => ControlFlow::Continue(()),
        }
    });
    if let ControlFlow::Break(why) = found {
        bail!("{what} {text:?}: {why} is refused. Rows are selected batch by batch, so only row-wise expressions work; aggregate in a separate step before or after scoring");
    }
    Ok(())
}

/// A checked `--sql` query.
pub struct CheckedQuery {
    pub query: Query,
    /// Whether the projection holds `*` (every input column passes through).
    pub star: bool,
}

/// Parses a `--sql` query and checks that it is one row-wise SELECT from `input`.
pub fn parse_query(text: &str) -> Result<CheckedQuery> {
    let what = "--sql";
    let statements =
        Parser::parse_sql(&GenericDialect {}, text).map_err(|e| parse_error(what, text, e))?;
    let [Statement::Query(query)] = statements.as_slice() else {
        bail!("{what} {text:?}: give one SELECT … FROM {TABLE} [WHERE …] query");
    };
    let refuse = |clause: &str, instead: &str| -> Result<()> {
        bail!("{what} {text:?}: {clause} is refused; rows are scored batch by batch in input order, so {instead}")
    };
    if query.with.is_some() {
        refuse("WITH", "write the query over `input` directly")?;
    }
    if query.order_by.is_some() {
        refuse("ORDER BY", "sort the output afterwards")?;
    }
    if query.limit_clause.is_some() || query.fetch.is_some() {
        refuse("LIMIT", "use --limit N")?;
    }
    let SetExpr::Select(select) = query.body.as_ref() else {
        bail!(
            "{what} {text:?}: only a plain SELECT is accepted (no UNION, VALUES or nested queries)"
        );
    };
    if select.distinct.is_some() {
        refuse("DISTINCT", "deduplicate before or after scoring")?;
    }
    if select.top.is_some() {
        refuse("TOP", "use --limit N")?;
    }
    let grouped = match &select.group_by {
        GroupByExpr::All(_) => true,
        GroupByExpr::Expressions(exprs, modifiers) => !exprs.is_empty() || !modifiers.is_empty(),
    };
    if grouped || select.having.is_some() {
        refuse("GROUP BY", "aggregate in a separate step")?;
    }
    if !select.sort_by.is_empty() || !select.cluster_by.is_empty() {
        refuse("SORT BY", "sort the output afterwards")?;
    }
    if select.qualify.is_some() || !select.named_window.is_empty() {
        refuse("a window clause", "compute window features beforehand")?;
    }
    if select.into.is_some() || !select.lateral_views.is_empty() || select.prewhere.is_some() {
        bail!("{what} {text:?}: only SELECT … FROM {TABLE} [WHERE …] is accepted");
    }
    match select.from.as_slice() {
        [one] if one.joins.is_empty() => match &one.relation {
            TableFactor::Table { name, .. } if name.to_string() == TABLE => {}
            other => bail!(
                "{what} {text:?}: the query must read the table `{TABLE}` (the input), not {other}"
            ),
        },
        [one] if !one.joins.is_empty() => refuse("JOIN", "join before scoring")?,
        _ => bail!("{what} {text:?}: the query must read only the table `{TABLE}` (the input); joins are refused"),
    }
    row_wise(what, text, query.as_ref())?;
    let star = select
        .projection
        .iter()
        .any(|item| matches!(item, SelectItem::Wildcard(_)));
    if select
        .projection
        .iter()
        .any(|item| matches!(item, SelectItem::QualifiedWildcard(..)))
    {
        bail!("{what} {text:?}: write `*` rather than `input.*`");
    }
    Ok(CheckedQuery {
        query: query.as_ref().clone(),
        star,
    })
}

/// The column an identifier names (the last part of `input.col`).
fn column_of(e: &Expr) -> Option<&Ident> {
    match e {
        Expr::Identifier(id) => Some(id),
        Expr::CompoundIdentifier(parts) => parts.last(),
        _ => None,
    }
}

/// Every name a piece of SQL mentions as a column (a superset of the input
/// columns it reads: aliases are included).
pub fn referenced<V: sqlparser::ast::Visit>(v: &V) -> Vec<String> {
    let mut names = vec![];
    let _ = visit_expressions(v, |e: &Expr| {
        if let Some(id) = column_of(e) {
            if !names.contains(&id.value) {
                names.push(id.value.clone());
            }
        }
        ControlFlow::<()>::Continue(())
    });
    names
}

/// The first identifier in `expr` that is not one of `columns`, with where it is.
pub fn unknown_column(expr: &Expr, columns: &[String]) -> Option<String> {
    let found = visit_expressions(expr, |e: &Expr| match column_of(e) {
        Some(id) if !columns.contains(&id.value) => {
            ControlFlow::Break(format!("`{}`{}", id.value, at_span(id.span)))
        }
        _ => ControlFlow::Continue(()),
    });
    match found {
        ControlFlow::Break(s) => Some(s),
        ControlFlow::Continue(()) => None,
    }
}

/// A double-quoted SQL identifier.
pub fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Whether `e` is a constant: no column and nothing random in it.
fn is_constant(e: &Expr) -> bool {
    let found = visit_expressions(e, |x: &Expr| match x {
        Expr::Identifier(_) | Expr::CompoundIdentifier(_) => ControlFlow::Break(()),
        Expr::Function(f) if f.name.to_string().to_ascii_lowercase().starts_with("rand") => {
            ControlFlow::Break(())
        }
        _ => ControlFlow::Continue(()),
    });
    found.is_continue()
}

/// A check over the bounds of the columns `bounded` accepts (named by
/// `min`/`max`), that is false only where no row within the bounds can satisfy
/// `e`: the predicate pushed down to partitions and row-group statistics. None
/// when nothing in `e` can be checked that way. Under SQL's three-valued logic an
/// unknown bound makes the check null, which is read as "may match".
pub fn bounds_check(
    e: &Expr,
    bounded: &dyn Fn(&str) -> bool,
    min: &dyn Fn(&str) -> String,
    max: &dyn Fn(&str) -> String,
) -> Option<String> {
    let recurse = |x: &Expr| bounds_check(x, bounded, min, max);
    let column = |x: &Expr| {
        column_of(x)
            .map(|id| id.value.clone())
            .filter(|c| bounded(c))
    };
    let leaf = |c: &str, op: &BinaryOperator, v: &Expr| -> Option<String> {
        let (lo, hi) = (quoted(&min(c)), quoted(&max(c)));
        Some(match op {
            BinaryOperator::Eq => format!("({lo} <= {v} AND {hi} >= {v})"),
            BinaryOperator::Gt => format!("({hi} > {v})"),
            BinaryOperator::GtEq => format!("({hi} >= {v})"),
            BinaryOperator::Lt => format!("({lo} < {v})"),
            BinaryOperator::LtEq => format!("({lo} <= {v})"),
            _ => return None,
        })
    };
    match e {
        Expr::Nested(x) => recurse(x),
        Expr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => match (recurse(left), recurse(right)) {
            (Some(a), Some(b)) => Some(format!("({a} AND {b})")),
            (a, b) => a.or(b),
        },
        Expr::BinaryOp {
            left,
            op: BinaryOperator::Or,
            right,
        } => Some(format!("({} OR {})", recurse(left)?, recurse(right)?)),
        Expr::BinaryOp { left, op, right } => {
            if let (Some(c), true) = (column(left), is_constant(right)) {
                leaf(&c, op, right)
            } else if let (Some(c), true) = (column(right), is_constant(left)) {
                let flipped = match op {
                    BinaryOperator::Gt => BinaryOperator::Lt,
                    BinaryOperator::GtEq => BinaryOperator::LtEq,
                    BinaryOperator::Lt => BinaryOperator::Gt,
                    BinaryOperator::LtEq => BinaryOperator::GtEq,
                    other => other.clone(),
                };
                leaf(&c, &flipped, left)
            } else {
                None
            }
        }
        Expr::Between {
            expr,
            negated: false,
            low,
            high,
        } if is_constant(low) && is_constant(high) => {
            let c = column(expr)?;
            Some(format!(
                "({} AND {})",
                leaf(&c, &BinaryOperator::GtEq, low)?,
                leaf(&c, &BinaryOperator::LtEq, high)?
            ))
        }
        Expr::InList {
            expr,
            list,
            negated: false,
        } if !list.is_empty() && list.iter().all(is_constant) => {
            let c = column(expr)?;
            let each: Option<Vec<String>> = list
                .iter()
                .map(|v| leaf(&c, &BinaryOperator::Eq, v))
                .collect();
            Some(format!("({})", each?.join(" OR ")))
        }
        _ => None,
    }
}

/// The query with `column` added to its projection, unless `*` carries it already.
pub fn with_projected(checked: &CheckedQuery, column: &str) -> String {
    let mut query = checked.query.clone();
    if !checked.star {
        if let SetExpr::Select(select) = query.body.as_mut() {
            select
                .projection
                .push(SelectItem::UnnamedExpr(Expr::Identifier(
                    Ident::with_quote('"', column),
                )));
        }
    }
    query.to_string()
}

/// The WHERE clause of a checked query.
pub fn where_clause(checked: &CheckedQuery) -> Option<&Expr> {
    match checked.query.body.as_ref() {
        SetExpr::Select(select) => select.selection.as_ref(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(filter: &str, bounded: &[&str]) -> Option<String> {
        let e = parse_expr("--filter", filter).unwrap();
        bounds_check(
            &e,
            &|c| bounded.contains(&c),
            &|c| format!("{c}.lo"),
            &|c| format!("{c}.hi"),
        )
    }

    #[test]
    fn bounds_checks_cover_comparisons_ranges_and_lists() {
        assert_eq!(
            check("d >= '2024-01-01' and country == 'FR'", &["d", "country"]).unwrap(),
            "((\"d.hi\" >= '2024-01-01') AND (\"country.lo\" <= 'FR' AND \"country.hi\" >= 'FR'))"
        );
        assert_eq!(check("5 < x", &["x"]).unwrap(), "(\"x.hi\" > 5)");
        assert_eq!(
            check("x between 1 and 2 or x in (7, 9)", &["x"]).unwrap(),
            "(((\"x.hi\" >= 1) AND (\"x.lo\" <= 2)) OR ((\"x.lo\" <= 7 AND \"x.hi\" >= 7) OR (\"x.lo\" <= 9 AND \"x.hi\" >= 9)))"
        );
        // What cannot be checked is left to the row filter.
        assert_eq!(
            check("x > 1 and log(y) > 2", &["x", "y"]).unwrap(),
            "(\"x.hi\" > 1)"
        );
        assert_eq!(check("x > 1 or y > 2", &["x"]), None);
        assert_eq!(check("x != 1", &["x"]), None);
        assert_eq!(check("x > y", &["x", "y"]), None);
    }

    #[test]
    fn aggregations_windows_and_subqueries_are_refused_with_a_position() {
        let e = parse_expr("--with", "amount - avg(amount)").unwrap_err();
        assert!(
            e.to_string()
                .contains("avg (an aggregation) at line 1, column 10"),
            "{e}"
        );
        let e = parse_expr("--filter", "rank() over (order by x) < 3").unwrap_err();
        assert!(e.to_string().contains("window function"), "{e}");
        let e = parse_expr("--filter", "x > 1 y").unwrap_err();
        assert!(e.to_string().contains("column 7"), "{e}");
        assert!(parse_expr("--filter", "x in (select 1)").is_err());
    }

    #[test]
    fn queries_must_be_one_row_wise_select_from_input() {
        let ok = parse_query("SELECT *, log1p(a) AS b FROM input WHERE c = 'x'").unwrap();
        assert!(ok.star);
        assert_eq!(referenced(&ok.query), ["a", "c"]);
        let q = parse_query("select a from input").unwrap();
        assert!(!q.star);
        assert_eq!(
            with_projected(&q, "__row"),
            "SELECT a, \"__row\" FROM input"
        );
        for (sql, why) in [
            ("select a from input order by a", "ORDER BY"),
            ("select a from input limit 3", "LIMIT"),
            ("select count(*) from input", "aggregation"),
            ("select a from input group by a", "GROUP BY"),
            ("select distinct a from input", "DISTINCT"),
            (
                "select * from input join other on input.a = other.a",
                "JOIN",
            ),
            ("select * from other", "table `input`"),
            ("select 1; select 2", "one SELECT"),
            (
                "select * from input union select * from input",
                "plain SELECT",
            ),
        ] {
            let e = parse_query(sql).err().unwrap().to_string();
            assert!(e.contains(why), "{sql}: {e}");
        }
    }
}
