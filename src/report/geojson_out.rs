//! GeoJSON FeatureCollections (RFC 7946, lon/lat) of the units with report attributes, for QGIS
//! and other GIS tools. Features in unit-id order, properties in the order given.

use geo::MultiPolygon;
use serde_json::{Map, Value, json};

/// A property value of a feature.
#[derive(Debug, Clone, PartialEq)]
pub enum Prop {
    Text(String),
    Number(f64),
    Integer(i64),
}

fn ring(coords: &geo::LineString<f64>) -> Value {
    Value::Array(
        coords
            .0
            .iter()
            .map(|c| json!([round6(c.x), round6(c.y)]))
            .collect(),
    )
}

/// Coordinates to 6 decimals (~0.1 m), as the boundary files carry them.
fn round6(v: f64) -> f64 {
    (v * 1e6).round() / 1e6
}

fn geometry(shape: &MultiPolygon<f64>) -> Value {
    let polys: Vec<Value> = shape
        .0
        .iter()
        .map(|p| {
            Value::Array(
                std::iter::once(p.exterior())
                    .chain(p.interiors())
                    .map(ring)
                    .collect(),
            )
        })
        .collect();
    json!({ "type": "MultiPolygon", "coordinates": polys })
}

/// One feature: unit id, outline and properties.
pub type Feature<'a> = (&'a str, &'a MultiPolygon<f64>, Vec<(String, Prop)>);

/// A FeatureCollection: one feature per `(id, shape, properties)`; `unit_id` is always the
/// first property. Non-finite numbers become `null`.
pub fn feature_collection(name: &str, features: &[Feature<'_>]) -> String {
    let feats: Vec<Value> = features
        .iter()
        .map(|(id, shape, props)| {
            let mut p = Map::new();
            p.insert("unit_id".into(), Value::String((*id).to_owned()));
            for (k, v) in props {
                let value = match v {
                    Prop::Text(s) => Value::String(s.clone()),
                    Prop::Number(x) => serde_json::Number::from_f64(*x).map_or(Value::Null, Value::Number),
                    Prop::Integer(i) => Value::from(*i),
                };
                p.insert(k.clone(), value);
            }
            json!({ "type": "Feature", "properties": Value::Object(p), "geometry": geometry(shape) })
        })
        .collect();
    let fc = json!({ "type": "FeatureCollection", "name": name, "features": feats });
    let mut text = serde_json::to_string(&fc).expect("JSON values serialise");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo::polygon;

    #[test]
    fn writes_a_feature_collection_that_reads_back() {
        let sq = MultiPolygon(vec![
            polygon![(x: 113.0, y: 34.0), (x: 113.5, y: 34.0), (x: 113.5, y: 34.5), (x: 113.0, y: 34.0)],
        ]);
        let text = feature_collection(
            "zones",
            &[(
                "410100",
                &sq,
                vec![
                    ("zone".into(), Prop::Text("payment".into())),
                    ("nce_t_c".into(), Prop::Number(f64::NAN)),
                ],
            )],
        );
        let gj: geojson::GeoJson = text.parse().unwrap();
        let geojson::GeoJson::FeatureCollection(fc) = gj else {
            panic!("not a collection")
        };
        assert_eq!(fc.features.len(), 1);
        assert_eq!(fc.features[0].property("zone").unwrap(), "payment");
        assert!(fc.features[0].property("nce_t_c").unwrap().is_null());
    }
}
