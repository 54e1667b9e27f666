"""The ensemble stage of `seqclf.run.train`: the members beyond the first, then their average.

The recipe (`seqclf.recipe`, `members`) asks for several models where training is cheap; member
0 is the run's own model (`seqclf.training.fit_stage`), this stage trains the others and puts
them all behind one averaging layer (`seqclf.models.ensemble.average_backbones`).
"""

import dataclasses
import time

import keras
import numpy as np

from seqclf.models import TextClassifier, compile_classifier
from seqclf.models.ensemble import average_backbones
from seqclf.models.text_classifier import backbone_from_settings
from seqclf.training import (
    compile_backbone,
    data_errors,
    datasets_stage,
    member_header,
    quiet_end_of_data,
    quiet_retracing,
    say,
    training_callbacks,
)


def members_stage(setup, built, train_data, val_data, pool):
    """The other members of an ensemble (`config.members` > 1), then the averaged backbone.

    Member 0 is the run's own model, trained by `fit_stage` with every callback (gradient
    statistics, position probe, backup). Member k trains with seed `seed + k` and, where the
    validation data was held out of the training file (`pool`), its own held-out split of it:
    each member then learns from a different 90% and chooses its best epoch on the other 10%.
    Members share the preprocessor (member 0's vocabulary). Each finished member is saved under
    `members/`, so a resumed run retrains only the unfinished ones. Replaces the classifier's
    backbone by the ensemble; returns the records of members 1.. (`write_results_stage` adds
    member 0's from the run's history).
    """
    config, run, strategy = built.config, setup.run, setup.strategy
    records, backbones = [], [built.classifier.backbone]
    for k in range(1, config.members):
        seed = config.seed + k
        finished = run.load_member(k)
        if finished is not None:
            say(config, f"{member_header(config, k)}: finished before the run stopped, reused "
                        f"from {run.member_file(k)}")
            backbones.append(finished[0])
            records.append(finished[1])
            continue
        member_train, member_val = (pool.split(config.val_fraction, seed=seed)
                                    if pool is not None else (train_data, val_data))
        keras.utils.set_random_seed(seed)
        with strategy.scope():
            backbone = backbone_from_settings(
                {**dataclasses.asdict(config), "seed": seed, "ngram_buckets": 0},
                vocab_size=built.classifier.preprocessor.vocabulary_size,
                num_classes=train_data.num_classes, embeddings=built.embeddings,
            )
            compile_backbone(config, backbone, built.steps_per_epoch)
        train_ds, val_ds = datasets_stage(setup, built, member_train, member_val,
                                          model=backbone, seed=seed)
        say(config, member_header(config, k))
        start = time.perf_counter()
        with quiet_end_of_data(), quiet_retracing(), data_errors():
            history = backbone.fit(
                train_ds, validation_data=val_ds, epochs=config.epochs,
                callbacks=training_callbacks(built), verbose=0, shuffle=False,
                steps_per_epoch=config.steps_per_epoch,
            )
        val_acc = history.history["val_accuracy"]
        record = {"member": k, "seed": seed, "val_accuracy": float(max(val_acc)),
                  "best_epoch": int(np.argmax(val_acc)) + 1, "epochs": len(val_acc),
                  "train_seconds": round(time.perf_counter() - start, 2)}
        run.save_member(k, backbone, record)
        records.append(record)
        backbones.append(backbone)
    ensemble = average_backbones(backbones)
    compile_classifier(ensemble, steps_per_execution=1)  # for evaluate; trains no further
    classifier = built.classifier
    built.classifier = TextClassifier(ensemble, classifier.preprocessor, classifier.label_names,
                                      settings=classifier.settings)
    return records

