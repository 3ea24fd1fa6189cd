//! GetJourneyStats through the real gRPC API on SQLite and PostgreSQL: entered, active and
//! exits, the treatment and holdout groups' conversions from real interaction events, the
//! uplift with its interval, per-node figures before and after a wait ends, the filters, and
//! bad requests.
#![allow(clippy::unwrap_used)]

mod orchestration_engine_support;

use std::collections::BTreeMap;

use orchestration_engine_support::*;
use throughline_harness::{TestDatabase, on_both_databases, token, violations};
use throughline_proto::google::r#type::Interval;
use throughline_proto::orchestration::v1::*;
use tonic::Code;

async fn stats(client: &mut Client, version: i32, range: Option<Interval>) -> JourneyStats {
    client
        .get_journey_stats(GetJourneyStatsRequest {
            journey: "journeys/welcome".into(),
            version,
            entry_time_range: range,
        })
        .await
        .unwrap()
        .into_inner()
        .stats
        .unwrap()
}

fn counts(pairs: &[(&str, i64)]) -> BTreeMap<String, i64> {
    pairs
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| ((*k).to_owned(), *n))
        .collect()
}

on_both_databases!(
    stats_count_groups_conversions_uplift_and_nodes,
    |db: TestDatabase| async move {
        let (suite, clock) = start(&["interaction", "orchestration"], &db).await;
        let mut other = client(&suite, "globex").await;
        let mut client = client(&suite, "acme").await;
        let mut interactions = suite
            .clients(&token("acme", &["interaction:read", "interaction:write"]))
            .await
            .interaction;
        let mut welcome = definition(
            api_trigger(),
            vec![wait("w", DAY, "done"), exit("done", "finished")],
        );
        welcome.holdout_percent = 50.0;
        welcome.goal = Some(Goal {
            event: Some(interaction("order.placed", "")),
            window: Some(seconds(7 * DAY)),
        });
        publish(&mut client, "welcome", welcome).await;

        // 40 customers; every second one in the treatment and every third one in the holdout
        // orders.
        let (mut treatment, mut holdout) = ((0, 0), (0, 0));
        let mut converting = Vec::new();
        for i in 0..40 {
            let customer = format!("profiles/c{i}");
            let started = start_journey(&mut client, "welcome", profile(&customer)).await;
            let (group, orders) = if started.holdout {
                (&mut holdout, i % 3 == 0)
            } else {
                (&mut treatment, i % 2 == 0)
            };
            group.0 += 1;
            if orders {
                group.1 += 1;
                converting.push((i, customer, started.name));
            }
        }
        assert!(
            treatment.0 > 0 && holdout.0 > 0,
            "{treatment:?} {holdout:?}"
        );
        for (i, customer, _) in &converting {
            interactions
                .record_interaction(record(customer, &format!("c{i}-order"), "order.placed", ""))
                .await
                .unwrap();
        }
        for (_, _, name) in &converting {
            instance_when(&client, name, "the order converts", |i| i.converted).await;
        }

        let figures = stats(&mut client, 0, None).await;
        assert_eq!(figures.journey, "journeys/welcome");
        assert_eq!(figures.entered, 40);
        assert_eq!(figures.active, treatment.0 - treatment.1);
        assert_eq!(
            figures.exits_by_reason,
            counts(&[("holdout", holdout.0), ("goal", treatment.1)])
        );
        let group = |g: &Option<GroupStats>| {
            let g = g.as_ref().unwrap();
            (g.entered, g.conversions, g.conversion_rate)
        };
        let rate = |(n, c): (i64, i64)| c as f64 / n as f64;
        assert_eq!(
            group(&figures.treatment),
            (treatment.0, treatment.1, rate(treatment))
        );
        assert_eq!(
            group(&figures.holdout),
            (holdout.0, holdout.1, rate(holdout))
        );
        let uplift = figures.uplift.unwrap();
        assert!((uplift - (rate(treatment) - rate(holdout))).abs() < 1e-12);
        let interval = figures.uplift_interval.unwrap();
        assert!(
            interval.lower < uplift && uplift < interval.upper,
            "{interval:?}"
        );
        assert!(interval.lower >= -1.0 && interval.upper <= 1.0);
        assert_eq!(interval.level, 0.95);

        // Per node, of the treatment: converted instances ended at the wait.
        let ids: Vec<&str> = figures.nodes.iter().map(|n| n.node_id.as_str()).collect();
        assert_eq!(ids, ["w", "done"]);
        let w = &figures.nodes[0];
        assert_eq!(w.entered, treatment.0);
        assert_eq!(w.waiting, treatment.0 - treatment.1);
        assert_eq!(w.completed, 0);
        assert_eq!(w.exits_by_reason, counts(&[("goal", treatment.1)]));
        assert_eq!(w.conversions, treatment.1);
        assert_eq!(
            figures.nodes[1],
            NodeStats {
                node_id: "done".into(),
                ..NodeStats::default()
            }
        );

        // The wait ends: the rest go on to the exit.
        advance(&clock, DAY).await;
        let rest = treatment.0 - treatment.1;
        let figures = eventually("the waits end", || {
            let mut client = client.clone();
            async move {
                let figures = stats(&mut client, 1, None).await;
                (figures.active == 0).then_some(figures)
            }
        })
        .await;
        assert_eq!(figures.version, 1);
        let (w, done) = (&figures.nodes[0], &figures.nodes[1]);
        assert_eq!((w.entered, w.waiting, w.completed), (treatment.0, 0, rest));
        assert_eq!(w.outcomes.values().sum::<i64>(), rest, "{:?}", w.outcomes);
        assert_eq!(
            (done.entered, done.completed, done.conversions),
            (rest, 0, 0)
        );
        assert_eq!(done.exits_by_reason, counts(&[("finished", rest)]));
        assert_eq!(
            figures.exits_by_reason,
            counts(&[
                ("holdout", holdout.0),
                ("goal", treatment.1),
                ("finished", rest)
            ])
        );
        // Every version together is the one version here.
        assert_eq!(stats(&mut client, 0, None).await.nodes, figures.nodes);

        // Entered before the range: nothing counts.
        let later = Interval {
            start_time: Some(throughline_runtime::time::timestamp(
                T0_US + 2 * DAY * 1_000_000,
            )),
            end_time: None,
        };
        let none = stats(&mut client, 0, Some(later)).await;
        assert_eq!((none.entered, none.uplift), (0, None));
        assert_eq!(none.nodes.iter().map(|n| n.entered).sum::<i64>(), 0);

        // Bad requests.
        let bad = client
            .get_journey_stats(GetJourneyStatsRequest {
                journey: "trips/welcome".into(),
                version: -1,
                entry_time_range: None,
            })
            .await
            .unwrap_err();
        assert_eq!(violations(&bad), ["version", "journey"]);
        let unknown_version = client
            .get_journey_stats(GetJourneyStatsRequest {
                journey: "journeys/welcome".into(),
                version: 9,
                entry_time_range: None,
            })
            .await
            .unwrap_err();
        assert_eq!(unknown_version.code(), Code::NotFound);
        let hidden = other
            .get_journey_stats(GetJourneyStatsRequest {
                journey: "journeys/welcome".into(),
                ..GetJourneyStatsRequest::default()
            })
            .await
            .unwrap_err();
        assert_eq!(hidden.code(), Code::NotFound);
        suite.stop().await;
    }
);
